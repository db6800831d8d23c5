"""``dpsynth datasets``, ``dpsynth generators`` and ``dpsynth schema draft``: what is there to train on."""

from __future__ import annotations

import click

from dpsynth.cli.common import _friendly


@click.command()
@click.argument("name", required=False)
@_friendly
def datasets(name: str | None) -> None:
    """List the embedded datasets and the built-in image schemas, or print one's public schema (YAML)."""
    from dpsynth.data.embedded import EMBEDDED, get_embedded
    from dpsynth.data.image_catalog import describe_image_schemas, image_schema_yaml

    if name and image_schema_yaml(name) is not None:
        click.echo(image_schema_yaml(name))
        return

    if name:
        import yaml

        click.echo(yaml.safe_dump(get_embedded(name).schema().to_dict(), sort_keys=False))
        return
    for ds in EMBEDDED.values():
        schema = ds.schema()
        click.echo(f"{ds.name}: {ds.description}")
        click.echo(f"  rows={ds.rows}  columns={len(schema.columns)}  target={schema.target}  "
                   f"sensitive={','.join(schema.sensitive)}  source=package '{ds.package}'")
        click.echo(f"  columns: {', '.join(f'{c.name}({c.kind})' for c in schema.columns)}")
    for line in describe_image_schemas():
        click.echo(line)


@click.command()
@_friendly
def generators() -> None:
    """List the registered generators."""
    from dpsynth.generators.registry import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        click.echo(f"{name:20s} {getattr(cls, 'modality', 'table'):6s} {doc}")


@click.group()
def schema() -> None:
    """Public schemas: write a draft for your own table."""


@schema.command("draft")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Draft schema YAML to write.")
@click.option("--target", default=None, help="Prefill the outcome column.")
@click.option("--sensitive", default=None, metavar="COLS", help="Prefill subgroup columns, comma-separated.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@_friendly
def schema_draft(data, out, target, sensitive, overwrite):
    """Write a commented schema draft for DATA (.csv/.parquet) from its header and storage types only.

    Bounds and category lists are TODOs to fill from the data dictionary (never from the data);
    the draft says `reviewed: false`, and training refuses it until you set `reviewed: true`.

    \b
    Example:
      dpsynth schema draft mytable.csv -o schema.yaml
    """
    from dpsynth.data.draft import draft_schema

    cols = tuple(c.strip() for c in sensitive.split(",") if c.strip()) if sensitive else ()
    path = draft_schema(data, out, target=target, sensitive=cols, overwrite=overwrite)
    click.echo(f"wrote a schema draft to {path}: fill every TODO from the documentation, review the guessed kinds, "
               "the target and the sensitive flags, then set reviewed: true")
