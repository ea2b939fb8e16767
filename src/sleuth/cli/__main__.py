from sleuth.cli.app import main

main()
