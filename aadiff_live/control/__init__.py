"""Control from a VJ rig: OSC, MIDI, scenes (all optional, nothing listens unless asked)."""
