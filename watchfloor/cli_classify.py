"""`watchfloor classify`: a JSONL file of posts in, predictions out (offline; no database, no Redis)."""

from pathlib import Path

import click


@click.command()
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--explain", is_flag=True, help="Also print each label's confidence and the text that produced it.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes to share the file among (default: one per core; --explain uses one).")
def classify(input_path: Path, output_path: Path, explain: bool, workers: int | None) -> None:
    """Classify posts from a JSONL file into predictions (the format of shared/eval/score.py)."""
    from services.classify.batch import classify_file

    try:
        count = classify_file(input_path, output_path, explain=explain, workers=workers)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"classified {count} posts -> {output_path}", err=True)
