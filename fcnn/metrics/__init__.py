"""Evaluation metrics equal to torchmetrics', as pure ``jnp`` functions and summable accumulators.

Functional forms — ``fcnn.metrics.<name>`` mirrors ``torchmetrics.functional.<name>``
(same names, positional order, keywords and defaults) — and the task-specific
forms (``binary_…``, ``multiclass_…``, ``multilabel_…``)::

    fcnn.metrics.accuracy(logits, labels, task="multiclass", num_classes=10, top_k=5)
    fcnn.metrics.f1_score(logits, labels, task="multiclass", num_classes=10, average="macro")
    fcnn.metrics.confusion_matrix(logits, labels, task="multiclass", num_classes=10, normalize="true")
    fcnn.metrics.auroc(probs, labels, task="binary", max_fpr=0.1)
    fcnn.metrics.dice_score(pred_masks, masks, num_classes=3, input_format="index")  # from ...segmentation

Accumulators over many batches (:mod:`fcnn.metrics.stateful`) carry
torchmetrics' class names and return a :class:`Metric` of pure functions
``init() / update(state, preds, target) / compute(state)``; states are sums,
so they combine across batches with :func:`merge` and across devices with
``jax.lax.psum``.
"""

import types as _types

from fcnn.metrics.roc import auroc, binary_auroc, multiclass_auroc, multilabel_auroc
from fcnn.metrics.classification import (
    accuracy, binary_accuracy, binary_confusion_matrix, binary_f1_score, binary_fbeta_score, binary_jaccard_index,
    binary_precision, binary_recall, binary_stat_scores, confusion_matrix, f1_score, fbeta_score, jaccard_index,
    multiclass_accuracy, multiclass_confusion_matrix, multiclass_f1_score, multiclass_fbeta_score,
    multiclass_jaccard_index, multiclass_precision, multiclass_recall, multiclass_stat_scores, multilabel_accuracy,
    multilabel_confusion_matrix, multilabel_f1_score, multilabel_fbeta_score, multilabel_jaccard_index,
    multilabel_precision, multilabel_recall, multilabel_stat_scores, precision, recall, stat_scores,
)
from fcnn.metrics.segmentation import dice_score, mean_iou
from fcnn.metrics.stateful import (
    AUROC, Accuracy, Collection, ConfusionMatrix, DiceScore, F1Score, FBetaScore, JaccardIndex, MeanIoU, Metric,
    Precision, Recall, StatScores, classification_metrics, merge,
)

__all__ = [name for name, value in dict(globals()).items()
           if not name.startswith("_") and not isinstance(value, _types.ModuleType)]
