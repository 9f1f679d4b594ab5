from dizest_cli import main

main()
