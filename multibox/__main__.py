from multibox.cli import main

raise SystemExit(main())
