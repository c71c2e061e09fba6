"""The spark-submit entry point (spark-submit runs a file, not a module):
`spark-submit $(python -c 'import analyzer.spark_job as j; print(j.__file__)') report s3://logs/ -o r.json`,
or `python -m analyzer.spark_job report ...` where pyspark finds its cluster itself (SPARK_REMOTE).

The arguments are an `llm-cost` command line (report, price, whatif or audit), run with
`--engine spark` on the session spark-submit made (its --master and --conf apply)."""

from __future__ import annotations

import sys

ENGINE_COMMANDS = ("report", "price", "whatif", "audit")  # the commands with --engine


def main(argv: list[str] | None = None) -> None:
    from analyzer.cli import main as cli

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ENGINE_COMMANDS:
        sys.stderr.write(f"usage: analyzer.spark_job {{{','.join(ENGINE_COMMANDS)}}} PATHS... [options of llm-cost]\n")
        raise SystemExit(2)
    cli.main(args=[*args, "--engine", "spark"], prog_name="llm-cost")


if __name__ == "__main__":
    main()
