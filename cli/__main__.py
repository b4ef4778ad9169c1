from rgstore_cli.main import main

main()
