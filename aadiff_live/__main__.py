from aadiff_live.cli import main

raise SystemExit(main())
