from rgstore_cli.entry import main

main()
