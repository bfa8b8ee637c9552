"""CLI subcommands on the same Api as the UI. Each module: add_arguments(parser), run(args, api) -> exit code."""
SUBCOMMANDS = ("attention", "stream", "simulate", "profile", "evaluate", "retrieval", "sweep")
