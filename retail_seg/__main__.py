from retail_seg.cli import main

raise SystemExit(main())
