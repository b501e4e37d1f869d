"""`drgrad export`: publish a standalone `drgrad train` run as a TF Serving model version.

    drgrad train --dataset census --out runs/train/census
    drgrad export --run-dir runs/train/census --model-base runs/serving --model-name census

The run directory holds `model_config.json`, the weights and the fitted preprocessor. The
export puts the preprocessor (as a Keras layer, so its vocabularies travel inside the
SavedModel) in front of the model, exactly as the TFX Trainer puts the Transform graph, and
writes `<model-base>/<model-name>/<version>/` atomically with warmup requests, `models.config`
and the batching parameters (`serving.export`).
"""


def register(subparsers):
    parser = subparsers.add_parser(
        "export", help="export a `drgrad train` run as a TF Serving model version",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="output directory of `drgrad train`")
    parser.add_argument("--model-base", required=True, help="serving base directory")
    parser.add_argument("--model-name", default=None,
                        help="served model name (default: the dataset name)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: UNIX time, as TFX's Pusher)")
    parser.set_defaults(func=_export)


def _export(args):
    from drgrad.serving import export  # pylint: disable=g-import-not-at-top
    from drgrad.training.run_dir import load_trained  # pylint: disable=g-import-not-at-top

    model, preprocessor, config = load_trained(args.run_dir, compile_model=False)
    if preprocessor is None:
        raise FileNotFoundError(f"{args.run_dir} has no preprocessor/: re-run `drgrad train`")
    spec = preprocessor.spec
    transform = preprocessor.keras_layer()
    version_dir = export.write_model_version(
        args.model_base, args.model_name or spec.name,
        lambda path: export.export_saved_model(model, transform, spec.raw_feature_spec(),
                                               list(config.tasks), path),
        version=args.version)
    print(f"exported {args.run_dir} -> {version_dir}")
    return 0
