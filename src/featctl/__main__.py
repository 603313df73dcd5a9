from featctl.cli.main import main

main()
