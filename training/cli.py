"""`drgrad train`: standalone training (training/train.py). Imports nothing heavy at import time."""
import json

from drgrad.data.cli import dataset_argument
from drgrad.data.cli import positive_int as _positive_int
from drgrad.model.config import PRESETS


def _key_values(pairs, flag):
    """``["gamma=2", "router=false"]`` -> ``{"gamma": 2, "router": False}`` (values as JSON)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a multi-task model without TFX and report per-task AUC",
        description="Train on a dataset (drgrad data), early-stop on validation mean AUC and "
                    "write DIR/metrics.json, model_config.json, weights/, preprocessor/, logs/.")
    parser.add_argument("--dataset", required=True, type=dataset_argument,
                        help="a built-in dataset name or a dataset file (PATH.yaml)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory")
    parser.add_argument("--backbone", default=None,
                        help="shared_bottom | mmoe | split_mmoe | ple (default split_mmoe)")
    parser.add_argument("--strategy", default=None,
                        help="equal_weight | drgrad | any registered strategy (default drgrad)")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help="paper Table 5 ablation (sets backbone, strategy and PPNet)")
    parser.add_argument("--strategy-arg", action="append", metavar="KEY=VALUE",
                        help="strategy argument, value as JSON (e.g. gamma=2, updater='\"ema\"')")
    parser.add_argument("--backbone-arg", action="append", metavar="KEY=VALUE",
                        help="backbone argument, value as JSON (e.g. num_experts=4)")
    parser.add_argument("--positive-weight", action="append", metavar="TASK=W",
                        help="positives of TASK weigh W in its loss (e.g. income=3, the DRGrad "
                             "authors' census setting); repeatable")
    parser.add_argument("--epochs", type=_positive_int, default=15)
    parser.add_argument("--batch-size", type=_positive_int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--beta-2", type=float, default=0.999,
                        help="Adam's beta_2 (default Keras's 0.999; the DRGrad authors' census "
                             "code uses 0.9999)")
    parser.add_argument("--embedding-dim", type=_positive_int, default=None,
                        help="embedding width (default: the dataset file's "
                             "transform.embedding_dim, 8)")
    parser.add_argument("--seed", type=int, default=0, help="model seed (weights, shuffling)")
    parser.add_argument("--data-seed", type=int, default=0, help="dataset seed (splits, sample)")
    parser.add_argument("--rows", type=_positive_int, default=None,
                        help="at most N rows per split")
    parser.add_argument("--source", default=None, help="raw data location (dataset specific)")
    parser.add_argument("--patience", type=int, default=2,
                        help="early-stopping patience in epochs on the validation mean AUC "
                             "(best weights kept)")
    parser.add_argument("--no-early-stopping", action="store_true",
                        help="train every --epochs epoch and keep the last weights")
    parser.add_argument("--parquet", default=None, metavar="FILE",
                        help="train split as a Parquet file of raw columns + labels, streamed "
                             "in chunks (pyarrow)")
    parser.add_argument("--log-every", type=_positive_int, default=10,
                        help="write strategy statistics to TensorBoard every N steps")
    parser.add_argument("--distribute", default="none",
                        choices=("none", "mirrored", "multi-worker"),
                        help="train under tf.distribute: mirrored (every local GPU, else every "
                             "logical CPU) or multi-worker (the cluster in TF_CONFIG; "
                             "--batch-size is the global batch)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    parser.set_defaults(func=_train)


def _train(args):
    from drgrad.training.train import train  # pylint: disable=g-import-not-at-top
    train(args.dataset, args.out, backbone=args.backbone, strategy=args.strategy,
          preset=args.preset, backbone_args=_key_values(args.backbone_arg, "--backbone-arg"),
          strategy_args=_key_values(args.strategy_arg, "--strategy-arg"), epochs=args.epochs,
          batch_size=args.batch_size, seed=args.seed, rows=args.rows, source=args.source,
          patience=None if args.no_early_stopping else args.patience, parquet=args.parquet,
          learning_rate=args.learning_rate, beta_2=args.beta_2,
          embedding_dim=args.embedding_dim, data_seed=args.data_seed, log_every=args.log_every,
          verbose=args.verbose, distribute=args.distribute,
          positive_weights=_key_values(args.positive_weight, "--positive-weight") or None)
    return 0
