from autodistill.cli import main

raise SystemExit(main())
