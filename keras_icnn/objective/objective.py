"""The objective: parameterisation -> image -> encoder features -> feature loss (+ priors)."""
from __future__ import annotations

__all__ = ["Objective"]


class Objective:
    """What every optimiser minimises.

    Args:
        param: a :class:`keras_icnn.params.Param` (built).
        extractor: a Keras model ``image -> {layer: features}``.
        feature_loss: a :class:`keras_icnn.losses.FeatureLoss`.
        priors: :class:`keras_icnn.priors.Prior` objects, each weighted by its schedule.
        image: ``z -> image`` used in the objective (default ``param.image``; a
            reduced-precision run passes ``param.compute_image(precision)``).  The extractor and
            ``image`` take and give float32: a reduced precision stays inside them (see
            :mod:`keras_icnn.models.precision`).
    """

    def __init__(self, param, extractor, feature_loss, priors=(), image=None):
        self.param = param
        self.image = param.image if image is None else image
        self.extractor = extractor
        self.feature_loss = feature_loss
        self.priors = list(priors)

    def terms(self, z, step, total):
        """The parts at ``z``, from one pass through the parameterisation and the encoder:
        ``(feature loss [N], {layer: weighted loss [N]}, [(prior name, weight, loss [N])])``."""
        image = self.image(z)
        loss, per_layer = self.feature_loss(self.extractor(image, training=False))
        priors = [(p.name, p.weight(step, total), p.loss(image)) for p in self.priors]
        return loss, per_layer, priors

    @staticmethod
    def combine(loss, per_layer, priors):
        """``(objective [N], logs)``: the feature loss plus the weighted priors, and the parts
        (``loss``, ``<layer>_loss``, ``<prior>_loss`` and, with priors, ``total_loss``)."""
        logs = {"loss": loss, **{f"{k}_loss": v for k, v in per_layer.items()}}
        total_loss = loss
        for name, w, lp in priors:
            logs[f"{name}_loss"] = lp
            total_loss = total_loss + w * lp
        if priors:
            logs["total_loss"] = total_loss
        return total_loss, logs

    def value(self, z, step, total):
        """``(objective [N], logs)`` at ``z``: see :meth:`combine`."""
        return self.combine(*self.terms(z, step, total))
