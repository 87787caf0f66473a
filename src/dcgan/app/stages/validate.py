"""validate: check the whole params.yaml before any other stage runs -> data/params.ok.

DVC deletes a stage's outputs before it runs it, so a bad value found inside, say, the train
stage would already have cost the workspace its models. Every stage therefore depends on this
cheap stage, which depends on every params section: a bad value (``dvc repro`` or
``dvc exp run -S train.lr=-1``) fails here, before any output is touched. Its output is a
constant stamp, so a valid edit reruns only this stage and the stages that use the value.
"""

from __future__ import annotations

import sys

from dcgan.app import paths
from dcgan.app.params.typed import keyed
from dcgan.app.params.whole import load_params
from dcgan.app.stages._common import log, parser, run
from dcgan.core import files
from dcgan.data.loaders import check_name

STAMP = "params.yaml validated\n"  # constant: must not change when a valid value changes


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default=paths.PARAMS_OK, help="stamp written when params are valid")
    args = ap.parse_args(argv)
    params = load_params(args.params)  # raises ConfigError naming the key, the expected and the given value
    with keyed("prepare"):
        check_name(params.prepare.dataset)  # the loader registry holds the dataset names
    files.write_text(args.out, STAMP)
    log(f"validate: {args.params} is valid")


if __name__ == "__main__":
    sys.exit(run(main))
