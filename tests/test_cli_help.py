"""The command-line help states Config's defaults (issue 18): `Config` is the one home of every default, so a
help text that states another default, or an option that sets a config key without saying its default, fails."""

from __future__ import annotations

import argparse
import re

import pytest

from aadiff_live.cli import BOUND, build_parser
from aadiff_live.config import Config, field_of

STATED = re.compile(r"\(default: (?P<value>.*); config: (?P<section>\w+)\.(?P<key>\w+)\)$")


def _actions():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            yield name, action


def _stated_value(text: str, default):
    """The default a help text states, read back as the config's type."""
    if isinstance(default, bool):
        return {"on": True, "off": False}.get(text, text)
    if isinstance(default, (int, float)):
        return type(default)(float(text)) if re.fullmatch(r"-?[\d.]+", text) else text
    if isinstance(default, list):
        return [] if text == "none" else text.split(", ")
    return text


def test_every_option_that_sets_a_config_key_states_its_default_from_config():
    cfg = Config()
    checked = 0
    for command, action in _actions():
        if action.dest not in BOUND:
            continue
        m = STATED.search(action.help or "")
        assert m, f"{command} {action.option_strings[0]}: the help states no default: {action.help!r}"
        section, key = m["section"], m["key"]
        assert (section, key) == BOUND[action.dest], f"{action.option_strings[0]} names the wrong config key"
        default = getattr(getattr(cfg, section), key)
        f = field_of(section, key)
        if default is None:  # what unset means, as the field says
            assert m["value"] == f.json_schema_extra["unset"], action.option_strings[0]
        else:
            assert _stated_value(m["value"], default) == default, (
                f"{command} {action.option_strings[0]}: help says default {m['value']!r}, Config has {default!r}")
        assert action.help.startswith(f.description), f"{action.option_strings[0]}: the help is not the field's"
        assert action.default is None, f"{action.option_strings[0]}: a keyword default shadows the config"
        checked += 1
    assert checked >= 80  # render, analyse, live and build-engine share most options


def test_no_option_sets_a_config_key_by_hand():
    """An option whose name is a config key must be bound to it (so its help and default come from Config)."""
    keys = {k for s in Config.model_fields.values() if hasattr(s.annotation, "model_fields")
            for k in s.annotation.model_fields}
    loose = [(c, a.option_strings[0]) for c, a in _actions()
             if a.option_strings and a.dest in keys and a.dest not in BOUND]
    assert not loose, f"options that set a config key without Config's help and default: {loose}"


def test_download_states_the_config_model_and_clap():
    helps = {a.dest: a.help for c, a in _actions() if c == "download"}
    assert Config().model.model in helps["fetch_model"] and Config().tokens.clap_model in helps["clap"]


@pytest.mark.parametrize("flag, section, key, value, want", [
    ("--fps", "envelope", "fps", "24", 24.0), ("--smoothing", "envelope", "mode", "trailing", "trailing"),
    ("--atlas-mb", "atlas", "mb", "64", 64.0), ("--display-fps", "live", "display_fps", "30", 30.0),
    ("--osc-host", "osc", "host", "0.0.0.0", "0.0.0.0"), ("--midi", "midi", "port", "LPD8", "LPD8"),
    ("--output", "video_out", "targets", "ndi", ["ndi"]), ("--loop", "live", "loop", None, True),
])
def test_a_bound_option_sets_its_key(flag, section, key, value, want):
    from aadiff_live.cli import _overrides
    from aadiff_live.config import load_config

    a = build_parser().parse_args(["live", flag, *([value] if value is not None else [])])
    assert getattr(getattr(load_config(None, _overrides(a)), section), key) == want
    assert getattr(getattr(load_config(None, _overrides(build_parser().parse_args(["live"]))), section), key) == \
        getattr(getattr(Config(), section), key)  # absent: the config's value stands


def test_config_errors_name_the_flag_that_sets_the_key():
    """config.flag_for (the flag a one-line config error names) is the flag bound to that key."""
    from aadiff_live.config import flag_for

    wrong = {(c, a.option_strings[0], flag_for(*BOUND[a.dest])) for c, a in _actions()
             if a.dest in BOUND and a.option_strings and flag_for(*BOUND[a.dest]) not in a.option_strings}
    assert not wrong, wrong
