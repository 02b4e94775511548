from dos.cli import main

raise SystemExit(main())
