"""The selector's three training losses, over SigLIP-style logits ``scale * cos + bias``.

All take ``logits`` ``(C, N)`` (every caption of the batch against every frame of the batch),
``owner`` ``(N,)`` (the caption each frame was mined for) and ``label`` ``(N,)`` (1 = a true
frame, 0 = a mined negative). The reference implementation multiplied cosines by a fixed 100,
which saturates the sigmoid, and normalised its contrastive loss over the positives alone, which
is exactly zero with one positive (92% of RoadBuddy's samples). Here scale and bias are learnt,
and the contrastive loss puts a caption's positives against its negatives and the other
captions' frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_SETTINGS = {1: "bce", 2: "bce_positives", 3: "contrastive"}


def own_logits(logits: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """``(N,)``: each frame's logit against its own caption."""
    return logits[owner, torch.arange(logits.shape[1], device=logits.device)]


def bce(logits: torch.Tensor, owner: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """1: binary cross-entropy, positives towards 1 and mined negatives towards 0."""
    return F.binary_cross_entropy_with_logits(own_logits(logits, owner), label.float())


def bce_positives(logits: torch.Tensor, owner: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """2: binary cross-entropy on the positives only (no negatives needed)."""
    positive = label > 0
    if not positive.any():
        raise ValueError("loss_setting 2 needs at least one positive frame in the batch")
    return F.binary_cross_entropy_with_logits(own_logits(logits, owner)[positive], label[positive].float())


def contrastive(logits: torch.Tensor, owner: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """3: multi-positive InfoNCE.

    Caption -> frames: ``-log(sum over its positives / sum over every frame of the batch)``, so a
    single positive competes with its own negatives and with all other captions' frames. With
    several captions, also frame -> captions: each positive frame must pick its own caption.
    The bias cancels in a softmax; the learnt scale sets the temperature.
    """
    positive = (owner.unsqueeze(0) == torch.arange(logits.shape[0], device=logits.device).unsqueeze(1)) & (label > 0)
    has_positive = positive.any(dim=1)
    if not has_positive.any():
        raise ValueError("loss_setting 3 needs at least one positive frame in the batch")
    all_frames = torch.logsumexp(logits, dim=1)
    positives = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    loss = (all_frames - positives)[has_positive].mean()
    if logits.shape[0] > 1:
        columns = label > 0
        loss = loss + F.cross_entropy(logits[:, columns].T, owner[columns])
    return loss


LOSSES = {1: bce, 2: bce_positives, 3: contrastive}
