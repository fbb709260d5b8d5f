"""Field-pair importance: Frobenius norms of a cross network's weight blocks (DCN-V2, Fig. 6).

A cross layer computes ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l``: entry ``W_l[i, j]`` is the
weight of the cross ``x0_i * x_l[j]``. Splitting the columns of ``x0`` into fields (a dense
feature is one column, an embedding of dim D a block of D columns) splits ``W_l`` into
blocks; the Frobenius norm of block (f, g) says how strongly layer l crosses row field f
(the ``x0`` side) with column field g (the ``x_l`` side). Read straight from the weights: no
retraining and no data, except the gate shares that weight a mixture's experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from crossrank.explain.ranking import PairScore, format_pair_table, rank_pairs
from crossrank.layers.cross import CrossNet
from crossrank.layers.validation import check_choice
from crossrank.models.protocol import CrossModel, FieldBlocks, no_cross_network

MEASURES = ("frobenius", "rms")
MEASURE_LABELS = {"frobenius": "||W[i,j]||_F", "rms": "RMS entry of W[i,j]"}
COMBINE_RULE = "root of the sum of squares over layers, sqrt(sum_l I_l^2)"
MIXTURE_RULE = ("experts weighted by the gate's average share s_k on the data: "
                "I = sqrt(sum_k s_k ||W_k[f,g]||_F^2)")


@dataclass(frozen=True, eq=False)
class FieldImportance:
    """Block norms ``I_l[f, g] = ||W_l[f, g]||_F`` of every cross layer, by field.

    ``combined = sqrt(sum_l I_l^2)``: the Frobenius norm of block (f, g) of all layers
    stacked, so a pair counts once whichever layer learned it. With ``measure="rms"`` every
    block norm is divided by ``sqrt(width_f * width_g)`` (the root-mean-square entry).

    Attributes:
        fields: the F field names, in the order of the rows and columns.
        widths: columns of x0 per field (1 for a dense feature, D for an embedding).
        layers: (L, F, F) float64, ``layers[l, f, g]`` for row field f, column field g.
        model: a short description of the model, for titles.
        source: what the numbers were computed from ("weights only", or the gate data).
        gate_shares: (L, K) average gate shares used for a mixture, else None.
        measure: "frobenius" or "rms".

    Shape:
        layers: (L, F, F); combined: (F, F).
    """

    fields: tuple[str, ...]
    widths: tuple[int, ...]
    layers: Tensor
    model: str
    source: str
    gate_shares: Tensor | None = None
    measure: str = "frobenius"

    @property
    def label(self) -> str:
        """What the numbers are, for table headers and colorbars."""
        return MEASURE_LABELS[self.measure]

    @property
    def num_layers(self) -> int:
        return self.layers.shape[0]

    @property
    def combined(self) -> Tensor:
        """(F, F): ``sqrt(sum_l I_l^2)``."""
        return self.layers.pow(2).sum(dim=0).sqrt()

    def matrix(self, layer: int | None = None) -> Tensor:
        """Layer ``layer``'s (F, F) matrix, or the combined one for None."""
        if layer is None:
            return self.combined
        if isinstance(layer, bool) or not isinstance(layer, int) \
                or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be None or an int in [0, {self.num_layers}), "
                             f"got {layer!r}")
        return self.layers[layer]

    def pairs(self, *, layer: int | None = None, top_k: int | None = None,
              include_self: bool = True) -> list[PairScore]:
        """Unordered field pairs, strongest first (see ``crossrank.explain.ranking``)."""
        return rank_pairs(self.matrix(layer), self.fields, top_k=top_k,
                          include_self=include_self)

    def format_table(self, *, top_k: int = 20, layer: int | None = None) -> str:
        """The top-k pairs as a text table with a header saying what the numbers are."""
        if layer is not None:
            which = f"layer {layer}"
        elif self.num_layers == 1:
            which = "layer 0 (the only layer)"
        else:
            which = f"combined over {self.num_layers} layers ({COMBINE_RULE})"
        header = (f"Field-pair importance {self.label}, {which}\n"
                  f"model: {self.model}; {self.source}")
        if self.measure == "frobenius" and len(set(self.widths)) > 1:
            header += (f"\nnote: fields are {min(self.widths)} to {max(self.widths)} columns wide "
                       "and Frobenius norms grow with block size; measure='rms' compares them "
                       "on the same footing")
        return header + "\n" + format_pair_table(self.pairs(layer=layer, top_k=top_k))

    def to_dict(self, *, top_k: int = 20) -> dict[str, Any]:
        """A JSON-serialisable summary: matrices, rules and the ranked pairs."""
        out: dict[str, Any] = {
            "model": self.model,
            "source": self.source,
            "fields": list(self.fields),
            "field_widths": list(self.widths),
            "num_layers": self.num_layers,
            "measure": self.measure,
            "score": ("Frobenius norm" if self.measure == "frobenius" else
                      "root-mean-square entry") + " of the block W_l[rows of field i, "
                     "columns of field j]; rows are the x0 side, columns the x_l side",
            "combine": COMBINE_RULE,
            "pairs_rule": "unordered: score(i,j) = sqrt(I[i,j]^2 + I[j,i]^2) for i != j, "
                          "I[i,i] for self pairs (flagged); share = score^2 / ||I||_F^2",
            "combined": self.combined.tolist(),
            "layers": self.layers.tolist(),
            "top_pairs": [p.to_dict() for p in self.pairs(top_k=top_k)],
            "top_pairs_per_layer": [[p.to_dict() for p in self.pairs(layer=i, top_k=top_k)]
                                    for i in range(self.num_layers)],
        }
        if self.gate_shares is not None:
            out["mixture_weighting"] = MIXTURE_RULE
            out["gate_shares"] = self.gate_shares.tolist()
        return out


def field_pair_importance(model_or_crossnet: nn.Module, *, field_blocks: FieldBlocks | None = None,
                          x0: Tensor | None = None, measure: str = "frobenius") -> FieldImportance:
    """Field-pair importance of a DCN, a DLRM with ``interaction="dcn"`` or a bare CrossNet.

    ``I_l[f, g] = ||W_l[rows of f, cols of g]||_F`` with ``W_l`` the layer's effective matrix
    (``W``, ``U V`` or ``1 w^T`` for DCN v1, plus ``diag_scale I``). For DCN-Mix each expert's
    block norm is weighted by its average gate share on ``x0``:
    ``I_l = sqrt(sum_k s_lk ||W_lk[f, g]||_F^2)`` (a share-weighted root mean square, so two
    experts with opposite weights do not cancel). With an activation the matrices are the
    linear part of each layer.

    Args:
        model_or_crossnet: a crossrank model with a cross network (read through
            :class:`~crossrank.models.protocol.CrossModel`) or a CrossNet.
        field_blocks: ``(name, start, stop)`` column ranges tiling ``[0, N)``; default: the
            model's ``cross_field_blocks()``, or one field per column ``col0..`` for a CrossNet.
        x0: (B, N) cross inputs, e.g. ``model.cross_input(dense, categorical)``; required for a
            mixture (its gate shares depend on the data), unused otherwise.
        measure: "frobenius" (the paper's block norm) or "rms", the norm divided by
            ``sqrt(width_f * width_g)``. A D x D embedding block has D^2 entries and a
            dense-dense block one, so Frobenius norms favour wide fields; "rms" compares
            fields of different widths on the same footing.

    Shape:
        x0: (B, N); returns layers (L, F, F).

    Example:
        >>> net = CrossNet(3, 1, use_bias=False)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[[0., 3., 4.], [0., 0., 0.], [1., 0., 0.]]]))
        >>> imp = field_pair_importance(net, field_blocks=[("a", 0, 1), ("bc", 1, 3)])
        >>> imp.combined.tolist()  # block (a, bc) = ||(3, 4)|| = 5
        [[0.0, 5.0], [1.0, 0.0]]
    """
    check_choice("measure", measure, MEASURES)
    net, blocks, description = _resolve(model_or_crossnet, field_blocks)
    names, widths, field_of_column = _check_blocks(blocks, net.in_features)
    shares = None
    source = "weights only"
    if net.is_mixture:
        if x0 is None:
            raise ValueError(
                f"x0 is required for a mixture of experts (num_experts={net.num_experts}): the "
                "experts are weighted by their average gate share on the data; pass "
                "x0=model.cross_input(dense, categorical) for a sample of rows, got x0=None")
        shares = net.gate_shares(x0).to(device="cpu", dtype=torch.float64)  # (L, K)
        source = f"experts weighted by average gate shares on {x0.shape[0]} rows"
    elif x0 is not None and (not isinstance(x0, Tensor) or x0.dim() != 2
                             or x0.shape[-1] != net.in_features):
        raise ValueError(f"x0 must be a (B, {net.in_features}) tensor, got "
                         f"{getattr(x0, 'shape', type(x0).__name__)}")
    f = len(names)
    w_f = torch.tensor(widths, dtype=torch.float64)
    sizes = w_f[:, None] * w_f[None, :] if measure == "rms" else torch.ones(f, f)  # (F, F)
    per_layer = []
    for layer in range(net.num_layers):
        w = net.effective_weight(layer)  # (N, N) or (K, N, N), on the model's device
        sq = block_sums(w.square(), field_of_column.to(w.device), f).cpu()  # (F, F) or (K, F, F)
        if shares is not None:
            sq = torch.einsum("k,kfg->fg", shares[layer], sq)  # (F, F)
        per_layer.append((sq / sizes).clamp_min(0).sqrt())
    return FieldImportance(fields=names, widths=widths, layers=torch.stack(per_layer),
                           model=description, source=source, gate_shares=shares,
                           measure=measure)


def block_sums(values: Tensor, field_of_column: Tensor, num_fields: int) -> Tensor:
    """Sum an (..., N, N) matrix over field blocks of rows and columns: (..., F, F) float64.

    Two ``index_add`` passes, O(N^2) work whatever the number of fields. The row pass runs
    in the input's dtype (it sums one field's width of values); the column pass and the
    result are float64.

    Example:
        >>> block_sums(torch.ones(3, 3), torch.tensor([0, 1, 1]), 2).tolist()
        [[1.0, 2.0], [2.0, 4.0]]
    """
    n = values.shape[-1]
    rows = values.new_zeros(*values.shape[:-2], num_fields, n)
    rows.index_add_(-2, field_of_column, values)  # (..., F, N)
    rows = rows.to(torch.float64)
    out = rows.new_zeros(*values.shape[:-2], num_fields, num_fields)
    return out.index_add_(-1, field_of_column, rows)  # (..., F, F)


def cross_network(model: nn.Module) -> CrossNet:
    """The cross network of a model (:class:`~crossrank.models.protocol.CrossModel`) or the
    CrossNet itself; a one-line ConfigError for a model without one."""
    if isinstance(model, CrossNet):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_or_crossnet must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(model, CrossModel):
        raise TypeError(f"model_or_crossnet must be a crossrank model or a CrossNet, got "
                        f"{type(model).__name__}")
    net = model.cross_network()
    if net is None:
        raise no_cross_network(model.model_name, model.describe())
    return net


def describe_model(model: nn.Module) -> str:
    """A short description for titles, e.g. ``DCN stacked, 3 cross layers, rank 8``."""
    net = cross_network(model)
    if net.kind == "vector":
        variant = "vector (DCN v1)"
    elif net.is_mixture:
        variant = f"{net.num_experts} rank-{net.rank} experts"
    else:
        variant = "full rank" if net.rank is None else f"rank {net.rank}"
    layers = f"{net.num_layers} cross layer{'s' if net.num_layers > 1 else ''}"
    name = model.describe() if isinstance(model, CrossModel) else "CrossNet"
    return f"{name}, {layers}, {variant}"


def _resolve(model: nn.Module, field_blocks: FieldBlocks | None) -> tuple[CrossNet, FieldBlocks, str]:
    net = cross_network(model)
    if field_blocks is not None:
        blocks = list(field_blocks)
    elif isinstance(model, CrossModel):
        blocks = list(model.cross_field_blocks())
    else:  # a bare CrossNet: one field per column
        blocks = [(f"col{i}", i, i + 1) for i in range(net.in_features)]
    return net, blocks, describe_model(model)


def _check_blocks(blocks: FieldBlocks, n: int) -> tuple[tuple[str, ...], tuple[int, ...], Tensor]:
    """Validate that the blocks tile [0, n) exactly once; return names, widths, column map."""
    field_of_column = torch.full((n,), -1, dtype=torch.long)
    names, widths = [], []
    for f, block in enumerate(blocks):
        if not isinstance(block, (tuple, list)) or len(block) != 3:
            raise ValueError(f"field_blocks entries must be (name, start, stop), got {block!r}")
        name, start, stop = block
        if not isinstance(name, str):
            raise TypeError(f"field_blocks names must be str, got {name!r}")
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop))
        if not ints or not 0 <= start < stop <= n:
            raise ValueError(f"field_blocks entry {block!r} must have ints 0 <= start < stop "
                             f"<= N={n}")
        if (field_of_column[start:stop] >= 0).any():
            raise ValueError(f"field_blocks entry {block!r} overlaps another field")
        field_of_column[start:stop] = f
        names.append(name)
        widths.append(stop - start)
    if (field_of_column < 0).any():
        missing = (field_of_column < 0).nonzero().flatten().tolist()
        raise ValueError(f"field_blocks must cover every column of x0 (N={n}); columns "
                         f"{missing[:10]}{'...' if len(missing) > 10 else ''} are in no field")
    if len(set(names)) != len(names):
        raise ValueError(f"field_blocks names must be unique, got {names}")
    return tuple(names), tuple(widths), field_of_column

