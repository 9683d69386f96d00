"""``--push-to-hub REPO_ID``: upload a finished checkpoint with its model card (huggingface_hub).

``check_push_access`` runs before any training: offline, without a token, with a read-only token or
for a namespace the token cannot write to, the program stops at once with one line, rather than
after hours of training. ``push_checkpoint`` uploads at the end of the run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bert_helu.runtime.atomic import atomic_write_text
from bert_helu.runtime.errors import UserError, first_line

FLAG = "--push-to-hub"


def add_push_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        FLAG,
        metavar="REPO_ID",
        help=f"at the end, upload {what} with its model card (README.md) to this Hugging Face Hub "
        "model repo (user/name, created if it does not exist). Needs the network and a write token "
        "(hf auth login, or HF_TOKEN): both are checked before training starts",
    )


def check_push_access(repo_id: str) -> None:
    """Raise a one-line UserError unless this process can push to ``repo_id`` now."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    where = f"{FLAG} {repo_id}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"{where}: not a Hub repo id ({first_line(err, 150)})") from None
    if constants.HF_HUB_OFFLINE:
        raise UserError(
            f"{where}: the Hub is switched off here (HF_HUB_OFFLINE=1); unset it or leave out {FLAG}"
        )
    token = get_token()
    if not token:
        raise UserError(
            f"{where}: no Hugging Face token (run `hf auth login`, or set HF_TOKEN to a write token)"
        )
    try:
        me = HfApi().whoami(token=token)
    except Exception as err:  # no network, a revoked token, ...: requests and hub errors alike
        raise UserError(f"{where}: cannot reach the Hub with your token ({first_line(err, 160)})") from None
    if (me.get("auth", {}).get("accessToken", {}) or {}).get("role") == "read":
        raise UserError(f"{where}: your token is read-only; pushing needs a write token (hf auth login)")
    namespace = repo_id.split("/")[0] if "/" in repo_id else me.get("name")
    writable = {me.get("name"), *(org.get("name") for org in me.get("orgs", []))}
    if namespace not in writable:
        raise UserError(
            f"{where}: you are {me.get('name')!r}, who cannot write to {namespace!r} "
            f"(your namespaces: {', '.join(sorted(n for n in writable if n))})"
        )


def push_checkpoint(folder: str | Path, repo_id: str, message: str) -> str:
    """Upload ``folder`` to ``repo_id`` (created if absent); its card then loads from the repo. The URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    # here, not at the top: the card pulls in transformers and datasets, which `pretrain --prepare-only`
    # (which reads this module for --push-to-hub) must not pay for
    from bert_helu.models.card import CARD_FILE, for_hub

    card = folder / CARD_FILE
    if card.is_file():  # the loading lines name the repo, not this machine's path
        atomic_write_text(card, for_hub(card.read_text(), repo_id))
    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=message)
    except Exception as err:
        raise UserError(
            f"{FLAG} {repo_id}: the upload failed ({first_line(err, 160)}); the checkpoint is in "
            f"{folder}: upload it later with `hf upload {repo_id} {folder}`"
        ) from None
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"
