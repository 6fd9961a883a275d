"""Making and using codes: ``mmhash fit``, ``encode``, ``index build``, ``search`` and
``features`` (raw images and texts to feature files)."""

from __future__ import annotations

import click

from mmhash.cli._common import (
    FIT_FLAGS,
    OUTPUT,
    PARAM_HELP_ONE,
    bits_help,
    console,
    data_dir_option,
    errors_as_one_line,
    loss_text,
    method_params,
    one_bits_and_seed,
    output_option,
    progress_bar,
    seed_option,
    views_option,
)
from mmhash.errors import InvalidInputError
from mmhash.outputs import (
    CODES_EXTENSIONS,
    INDEX_EXTENSIONS,
    MODEL_EXTENSIONS,
    TABLE_EXTENSIONS,
    check_output,
)


@click.command()
@click.argument("method")
@click.option("--dataset", default="synthetic", show_default=True,
              help="Registered dataset name or a path to a data file.")
@click.option("--bits", default="64", show_default=True, help=bits_help(many=False))
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help=PARAM_HELP_ONE)
@seed_option(many=False)
@click.option("--split", default="train", show_default=True,
              type=click.Choice(["train", "all"]),
              help="Train on the dataset's training split, or on every row (a user's file).")
@views_option
@output_option("Model file to write (.npz, no pickle).", required=True)
@data_dir_option
@errors_as_one_line
def fit(method, dataset, bits, param_items, seed, split, views, output, data_dir) -> None:
    """Train METHOD on a dataset and keep the model."""
    from mmhash.bench.grid import parse_list
    from mmhash.frontdoor import fit_model
    from mmhash.registry import check_method_params

    check_output(output, option=OUTPUT, extensions=MODEL_EXTENSIONS, inputs=(dataset,),
                 what="model files")
    bits, seed = one_bits_and_seed(bits, seed, "fit")
    params = method_params(param_items, method, FIT_FLAGS)
    check_method_params(method, {"n_bits": bits, "random_state": seed, **params})
    view_list = parse_list(views, "--views") if views else None
    with progress_bar(f"fit {method}") as bar:

        def on_epoch(epoch, n_epochs, metrics):
            bar.update(description=f"fit {method} epoch", completed=epoch, total=n_epochs,
                       note=loss_text(metrics))

        hasher = fit_model(method, dataset, bits=bits, params=params, seed=seed, split=split,
                           views=view_list, output=output, data_dir=data_dir, on_epoch=on_epoch)
    console().print(f"wrote {output}: {method}, {hasher.n_bits} bits, views "
                    f"{', '.join(hasher.modalities_)}", soft_wrap=True)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--view", required=True, help="Which of the model's views the features are.")
@click.option("--key", default=None, help="The array's name in an .npz or .mat file.")
@click.option("--format", "packing", default="packed", show_default=True,
              type=click.Choice(["packed", "int8"]),
              help="Bit-packed codes (8 per byte) or one int8 per bit.")
@output_option("Codes file to write (.npz).", required=True)
@errors_as_one_line
def encode(model, features, view, key, packing, output) -> None:
    """Codes for every row of FEATURES (.npy, .npz, .mat or .csv) with a saved MODEL."""
    from mmhash.frontdoor import encode_file

    check_output(output, option=OUTPUT, extensions=CODES_EXTENSIONS, inputs=(model, features),
                 what="codes files")
    done = encode_file(model, view, features, output, key=key, packing=packing)
    console().print(f"wrote {done.path}: {done.n_rows} rows, {done.n_bits}-bit codes of view "
                    f"{done.view!r}", soft_wrap=True)


@click.group()
def index() -> None:
    """Search indexes over encoded codes."""


@index.command("build")
@click.argument("codes", type=click.Path(dir_okay=False))
@output_option("Index file to write.", required=True)
@click.option("--backend", default="numba", show_default=True,
              type=click.Choice(["numba", "faiss"]), help="Search backend kept in the index.")
@errors_as_one_line
def index_build(codes, output, backend) -> None:
    """An exact Hamming index of a codes file (from `mmhash encode`)."""
    from mmhash.frontdoor import build_index

    check_output(output, option=OUTPUT, extensions=INDEX_EXTENSIONS, inputs=(codes,),
                 what="index files")
    built = build_index(codes, output, backend=backend)
    console().print(f"wrote {output}: {len(built.codes)} codes of {built.n_bits} bits",
                    soft_wrap=True)


@click.command()
@click.argument("index_file", metavar="INDEX", type=click.Path(dir_okay=False))
@click.argument("queries", type=click.Path(dir_okay=False))
@click.option("--model", default=None, type=click.Path(dir_okay=False),
              help="Encode QUERIES (features) with this model; without it QUERIES is a codes "
                   "file.")
@click.option("--view", default=None, help="Which of the model's views the queries are.")
@click.option("--key", default=None, help="The array's name in an .npz or .mat file.")
@click.option("-k", "k", default=10, show_default=True, type=int,
              help="Hits per query (with --radius: at most this many).")
@click.option("--radius", default=None, type=int,
              help="Every item within this Hamming distance (at most -k of them).")
@output_option("Write the hits to this .csv or .json file (default: CSV on stdout).")
@errors_as_one_line
def search(index_file, queries, model, view, key, k, radius, output) -> None:
    """Exact top-k (ties by database row) of each query: rows query,rank,item,distance."""
    from mmhash.frontdoor import search as run_search
    from mmhash.frontdoor import write_hits, write_hits_csv

    if output:
        check_output(output, option=OUTPUT, extensions=TABLE_EXTENSIONS,
                     inputs=(index_file, queries, model), what="search hits")
    hits = run_search(index_file, queries, k=k, radius=radius, model_path=model, view=view,
                      key=key)
    if output:
        write_hits(hits, output)
        console(stderr=True).print(f"wrote {output}: {len(hits.rank)} hits", soft_wrap=True)
    else:
        import io

        text = io.StringIO()
        write_hits_csv(hits, text)
        click.echo(text.getvalue(), nl=False)


# ---- features: raw images and texts -> feature files (mmhash.extract) -------------------------
@click.command("features")
@click.argument("inputs", metavar="IMAGES|TEXTS", type=click.Path())
@click.option("--extractor", required=True,
              type=click.Choice(["bow", "clip-vit-b32", "tfidf", "vgg19-fc7"]),
              help="vgg19-fc7 or clip-vit-b32 on images; bow, tfidf or clip-vit-b32 on texts.")
@click.option("--weights", default=None, type=click.Path(dir_okay=False),
              help="Network weights file (default: torchvision's / open_clip's cache; "
                   "nothing is downloaded).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Images (or captions) per forward pass.")
@click.option("--key", default=None, help="The array's name in a .mat/.h5/.npz file "
                                          "(default IAll / YAll, else the only one that fits).")
@click.option("--ids", "id_file", default=None, type=click.Path(dir_okay=False),
              help="For an image folder: the images to read, one relative file name a line "
                   "(default: every image file in it, by name).")
@click.option("--preprocess", "preprocess_mode", default=None,
              type=click.Choice(["resize-crop", "crop"]),
              help="Images: resize then centre crop 224 (default; DJSRH, torchvision), or "
                   "centre crop only (UCCH's test transform: a 224x224 IAll is unchanged).")
@click.option("--vocab-size", default=None, type=click.IntRange(min=1),
              help="Captions with bow/tfidf: keep the most frequent words (default 1000).")
@output_option("Feature file to write (.npz: features, ids, provenance).", required=True)
@errors_as_one_line
def features_command(inputs, extractor, weights, device, batch_size, key, id_file,
                     preprocess_mode, vocab_size, output) -> None:
    """Extract features from raw IMAGES (a 4-D IAll array file, or a folder) or TEXTS (a tag
    matrix, captions .txt one per line, or .csv with a text column). An interrupted image run
    resumes from OUTPUT.partial when rerun with the same inputs."""
    from mmhash.extract.run import (
        check_features_output,
        extract_image_features,
        extract_text_features,
    )

    check_features_output(output, (inputs, id_file, weights))
    on_images = _on_images(inputs, extractor)
    _check_feature_options(on_images, inputs, extractor, weights, id_file, preprocess_mode,
                           vocab_size)
    with progress_bar("features", elapsed=True, remaining=True, note=False) as bar:

        def step(label, done, total):
            bar.update(description=label, completed=done, total=total)

        if on_images:
            result = extract_image_features(
                inputs, output, extractor=extractor, weights=weights, device=device,
                batch_size=batch_size, preprocess=preprocess_mode or "resize-crop", key=key,
                id_file=id_file, progress=step)
        else:
            result = extract_text_features(
                inputs, output, extractor=extractor, key=key, vocab_size=vocab_size,
                weights=weights, device=device, batch_size=batch_size, progress=step)
    resumed = f"; {result.resumed_rows} rows resumed" if result.resumed_rows else ""
    where = result.provenance.get("device")
    console().print(f"wrote {result.path}: {result.rows} x {result.dim} float32 features "
                    f"({extractor}{f' on {where}' if where else ''}{resumed})", soft_wrap=True)


def _on_images(inputs, extractor) -> bool:
    """Whether ``extractor`` runs on images here: vgg19-fc7 always; clip-vit-b32 unless
    ``inputs`` is a captions file."""
    from pathlib import Path

    from mmhash.extract.sources import is_caption_file

    return extractor == "vgg19-fc7" or (
        extractor == "clip-vit-b32" and (Path(inputs).is_dir() or not is_caption_file(inputs)))


def _check_feature_options(on_images, inputs, extractor, weights, id_file, preprocess_mode,
                           vocab_size) -> None:
    """The options of images refused on texts, and those of captions on images."""
    if on_images and vocab_size is not None:
        raise InvalidInputError("--vocab-size is for captions with bow or tfidf")
    if not on_images:
        given = [name for name, value in (("--ids", id_file), ("--preprocess", preprocess_mode))
                 if value is not None]
        if extractor != "clip-vit-b32" and weights is not None:
            given.append("--weights")
        if given:
            raise InvalidInputError(f"{', '.join(given)}: for images; {inputs} is texts "
                                    f"({extractor})")
