"""The objective: parameterisation -> image -> encoder features -> feature loss (+ priors)."""
from __future__ import annotations

import tensorflow as tf

__all__ = ["Objective"]


class Objective:
    """What every optimiser minimises.

    Args:
        param: a :class:`keras_icnn.params.Param` (built).
        extractor: a Keras model ``image -> {layer: features}``.
        feature_loss: a :class:`keras_icnn.losses.FeatureLoss`.
        priors: :class:`keras_icnn.priors.Prior` objects, each weighted by its schedule.
    """

    def __init__(self, param, extractor, feature_loss, priors=()):
        self.param = param
        self.extractor = extractor
        self.feature_loss = feature_loss
        self.priors = list(priors)

    def features(self, z):
        """``(loss [N], {layer: weighted loss [N]})`` of the feature term at ``z``."""
        feats = self.extractor(self.param.image(z), training=False)
        return self.feature_loss(feats)

    def prior_terms(self, z, step, total):
        """``[(name, weight, loss [N])]`` for the priors at ``z``."""
        if not self.priors:
            return []
        image = self.param.image(z)
        return [(p.name, p.weight(step, total), p.loss(image)) for p in self.priors]

    def value(self, z, step, total):
        """``(objective [N], logs)``: feature loss plus weighted priors, with the parts."""
        loss, per_layer = self.features(z)
        logs = {"loss": loss, **{f"{k}_loss": v for k, v in per_layer.items()}}
        total_loss = loss
        for name, w, lp in self.prior_terms(z, step, total):
            logs[f"{name}_loss"] = lp
            total_loss = total_loss + w * lp
        if self.priors:
            logs["total_loss"] = total_loss
        return total_loss, logs
