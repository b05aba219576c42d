"""A NumPy reference of Caffe's forward pass (NCHW, float64), for tests.

Written from Caffe's documented layer definitions, independently of the
Keras translation in ``keras_icnn.caffe``:

* Convolution: cross-correlation of the zero-padded input,
  ``out[o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] * in_pad[c, y*s + i*d, x*s + j*d]``,
  output ``(in + 2p - (d(k-1)+1)) // s + 1``; with ``group`` G, weights ``(out, in/G, kh,
  kw)`` and the channels split into G consecutive blocks, block g of the output from block g
  of the input.
* Deconvolution: the adjoint of convolution (``col2im`` scatter-add), with
  weights ``(in, out, kh, kw)``:
  ``full[o, y*s + i*d, x*s + j*d] += W[c, o, i, j] * in[c, y, x]``, then
  ``pad`` cropped on every side; output ``s(in-1) + d(k-1) + 1 - 2p``.
* InnerProduct: ``W (out, in)`` times the input flattened in C,H,W order.
* Pooling (MAX, AVE): Caffe's loops, ceil rounding, last window clipped to
  start inside the padded input, AVE divisor clipped to the padded input.
* ReLU with ``negative_slope``, Softmax over channels, LRN across channels,
  Reshape (0 / -1 dims), Flatten, Dropout (identity at test time), Concat,
  Eltwise.

It also writes ``.caffemodel`` files (V2 ``layer`` or legacy V1 ``layers``,
shape or legacy num/channels/height/width blobs) with the package's schema
classes, and has a hand-written wire encoder for unpacked float blobs.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict

import numpy as np
from google.protobuf import text_format

from keras_icnn.caffe import proto

_V1_NAMES = {
    4: "Convolution", 39: "Deconvolution", 14: "InnerProduct", 18: "ReLU",
    17: "Pooling", 6: "Dropout", 20: "Softmax", 15: "LRN", 8: "Flatten",
    3: "Concat", 25: "Eltwise", 5: "Data",
}


def parse(text: str):
    net = proto.NetParameter()
    text_format.Parse(text, net, allow_unknown_field=True)
    return net


def _layers(net):
    if len(net.layer):
        return [(m.name, m.type, list(m.bottom), list(m.top), m) for m in net.layer]
    return [(m.name, _V1_NAMES[m.type], list(m.bottom), list(m.top), m) for m in net.layers]


def _pair(rep, h, w, msg, default):
    if msg.HasField(h) or msg.HasField(w):
        return getattr(msg, h), getattr(msg, w)
    rep = list(rep)
    if not rep:
        return default, default
    return (rep[0], rep[0]) if len(rep) == 1 else (rep[0], rep[1])


def conv_params(msg):
    p = msg.convolution_param
    k = _pair(p.kernel_size, "kernel_h", "kernel_w", p, None)
    s = _pair(p.stride, "stride_h", "stride_w", p, 1)
    pad = _pair(p.pad, "pad_h", "pad_w", p, 0)
    d = list(p.dilation) or [1]
    d = (d[0], d[0]) if len(d) == 1 else (d[0], d[1])
    return k, s, pad, d, p.num_output, p.bias_term


def conv2d(x, w, b, pad, stride, dil, group=1):
    if group > 1:  # Caffe: group g convolves input channels g*C/G.. with output channels g*O/G..
        xs, ws = np.split(x, group, axis=1), np.split(w, group, axis=0)
        bs = np.split(b, group) if b is not None else [None] * group
        return np.concatenate([conv2d(xg, wg, bg, pad, stride, dil)
                               for xg, wg, bg in zip(xs, ws, bs)], axis=1)
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2
    (ph, pw), (sh, sw), (dh, dw) = pad, stride, dil
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                       j * dw: j * dw + sw * (ow - 1) + 1: sw]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def deconv2d(x, w, b, pad, stride, dil):
    n, c, h, wd = x.shape
    c2, o, kh, kw = w.shape
    assert c == c2
    (ph, pw), (sh, sw), (dh, dw) = pad, stride, dil
    fh = sh * (h - 1) + dh * (kh - 1) + 1
    fw = sw * (wd - 1) + dw * (kw - 1) + 1
    full = np.zeros((n, o, fh, fw))
    for i in range(kh):
        for j in range(kw):
            full[:, :, i * dh: i * dh + sh * (h - 1) + 1: sh,
                 j * dw: j * dw + sw * (wd - 1) + 1: sw] += np.einsum(
                "nchw,co->nohw", x, w[:, :, i, j])
    out = full[:, :, ph: fh - ph, pw: fw - pw]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def pool2d(x, method, kernel, stride, pad, ceil=True):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad

    def size(inp, k, s, p):
        if ceil:
            out = int(math.ceil((inp + 2 * p - k) / s)) + 1
        else:
            out = (inp + 2 * p - k) // s + 1
        if p and (out - 1) * s >= inp + p:
            out -= 1
        return out

    oh, ow = size(h, kh, sh, ph), size(w, kw, sw, pw)
    out = np.zeros((n, c, oh, ow))
    for y in range(oh):
        for xx in range(ow):
            hs, ws = y * sh - ph, xx * sw - pw
            if method == "max":
                he, we = min(hs + kh, h), min(ws + kw, w)
                hs, ws = max(hs, 0), max(ws, 0)
                out[:, :, y, xx] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
            else:
                he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                area = (he - hs) * (we - ws)
                hs, ws = max(hs, 0), max(ws, 0)
                he, we = min(he, h), min(we, w)
                out[:, :, y, xx] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / area
    return out


def lrn_across(x, size, alpha, beta, k):
    c = x.shape[1]
    pre = (size - 1) // 2
    out = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - pre), min(c, ch - pre + size)
        scale = k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] * scale ** (-beta)
    return out


def reshape(x, spec):
    shape = []
    for i, d in enumerate(spec):
        shape.append(x.shape[i] if d == 0 else d)
    return x.reshape(shape)


class CaffeReference:
    """Run a prototxt's TEST-phase forward pass in NumPy.

    ``weights`` maps layer names to lists of arrays in Caffe layout; missing
    weights are drawn at random (scaled by 1/sqrt(fan_in)) during
    :meth:`forward` and stored in ``self.weights``.
    """

    def __init__(self, prototxt_text: str, weights=None, seed=0):
        self.text = prototxt_text
        self.net = parse(prototxt_text)
        self.weights = dict(weights or {})
        self.rng = np.random.default_rng(seed)

    def _w(self, name, shapes, fan_in):
        if name not in self.weights:
            ws = [self.rng.standard_normal(shapes[0]) / math.sqrt(fan_in)]
            for s in shapes[1:]:
                ws.append(0.1 * self.rng.standard_normal(s))
            self.weights[name] = [a.astype(np.float32) for a in ws]
        return [np.asarray(a, dtype=np.float64) for a in self.weights[name]]

    def forward(self, inputs: dict) -> "OrderedDict[str, np.ndarray]":
        blobs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
        outputs = OrderedDict()
        for name, kind, bottoms, tops, msg in _layers(self.net):
            if kind == "Input" or any(r.phase == 0 for r in msg.include):
                continue  # inputs are given; TRAIN-only layers are skipped
            x = blobs[bottoms[0]] if bottoms else None
            if kind in ("Convolution", "Deconvolution"):
                k, s, p, d, nout, bias = conv_params(msg)
                cin = x.shape[1]
                group = msg.convolution_param.group
                if kind == "Convolution":
                    shapes = [(nout, cin // group, k[0], k[1])]
                    fan_in = cin // group * k[0] * k[1]
                else:
                    shapes = [(cin, nout, k[0], k[1])]
                    fan_in = cin * k[0] * k[1] / (s[0] * s[1])
                if bias:
                    shapes.append((nout,))
                ws = self._w(name, shapes, fan_in)
                b = ws[1] if bias else None
                if kind == "Convolution":
                    y = conv2d(x, ws[0], b, p, s, d, group)
                else:
                    y = deconv2d(x, ws[0], b, p, s, d)
            elif kind == "InnerProduct":
                p = msg.inner_product_param
                flat = x.reshape(x.shape[0], -1)
                shapes = [(p.num_output, flat.shape[1])]
                if p.bias_term:
                    shapes.append((p.num_output,))
                ws = self._w(name, shapes, flat.shape[1])
                y = flat @ ws[0].reshape(p.num_output, -1).T
                if p.bias_term:
                    y = y + ws[1].reshape(-1)
            elif kind == "ReLU":
                slope = msg.relu_param.negative_slope
                y = np.maximum(x, 0) + slope * np.minimum(x, 0)
            elif kind == "Pooling":
                p = msg.pooling_param
                if p.global_pooling:
                    kernel, stride, pad = x.shape[2:], (1, 1), (0, 0)
                else:
                    kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (
                        p.kernel_size, p.kernel_size)
                    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (
                        p.stride, p.stride)
                    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
                y = pool2d(x, "max" if p.pool == 0 else "ave", kernel, stride, pad,
                           ceil=p.round_mode == 0)
            elif kind == "Dropout":
                y = x.copy()
            elif kind == "Softmax":
                e = np.exp(x - x.max(axis=1, keepdims=True))
                y = e / e.sum(axis=1, keepdims=True)
            elif kind == "LRN":
                p = msg.lrn_param
                y = lrn_across(x, p.local_size, p.alpha, p.beta, p.k)
            elif kind == "Reshape":
                y = reshape(x, list(msg.reshape_param.shape.dim))
            elif kind == "Flatten":
                y = x.reshape(x.shape[0], -1)
            elif kind == "Concat":
                y = np.concatenate([blobs[b] for b in bottoms], axis=msg.concat_param.axis)
            elif kind == "Eltwise":
                xs = [blobs[b] for b in bottoms]
                op = msg.eltwise_param.operation
                y = xs[0].copy()
                for other in xs[1:]:
                    y = y * other if op == 0 else (y + other if op == 1 else np.maximum(y, other))
            else:
                raise NotImplementedError(kind)
            blobs[tops[0]] = y
            outputs[name] = y.copy()
        return outputs


# ---------------------------------------------------------------------------
# Writing caffemodels
# ---------------------------------------------------------------------------


def _legacy4(shape):
    shape = tuple(shape)
    return (1,) * (4 - len(shape)) + shape


def fill_blob(blob, array, *, legacy=False, double=False):
    array = np.asarray(array)
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = _legacy4(array.shape)
    else:
        blob.shape.dim.extend(int(d) for d in array.shape)
    flat = array.ravel()
    if double:
        blob.double_data.extend(flat.astype(np.float64).tolist())
    else:
        blob.data.extend(flat.astype(np.float32).tolist())


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def unpacked_blob_bytes(array) -> bytes:
    """BlobProto bytes with *unpacked* dims and floats (one tag per value)."""
    array = np.asarray(array, dtype=np.float32)
    shape_msg = b"".join(b"\x08" + _varint(int(d)) for d in array.shape)
    out = b"\x3a" + _varint(len(shape_msg)) + shape_msg  # field 7, wire type 2
    for v in array.ravel():
        out += b"\x2d" + struct.pack("<f", float(v))  # field 5, wire type 5
    return out


def make_caffemodel(prototxt_text: str, weights: dict, *, legacy_blobs=False,
                    unpacked=(), double=(), strip_params=False) -> bytes:
    """Serialize ``prototxt_text`` with ``weights`` as a binary caffemodel.

    Layers named in ``unpacked`` get unpacked-float blobs, those in ``double``
    ``double_data`` blobs.  ``legacy_blobs`` writes num/channels/height/width.
    """
    net = parse(prototxt_text)
    layers = net.layer if len(net.layer) else net.layers
    for layer in layers:
        if layer.name not in weights:
            continue
        for array in weights[layer.name]:
            blob = layer.blobs.add()
            if layer.name in unpacked:
                blob.MergeFromString(unpacked_blob_bytes(array))
            else:
                fill_blob(blob, array, legacy=legacy_blobs, double=layer.name in double)
    return net.SerializeToString()
