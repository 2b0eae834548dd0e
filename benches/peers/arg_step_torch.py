"""PyTorch peer for `argus bench train`: times ONE training step of ARG (Hu et al., AAAI 2024, "Bad Actor, Good
Advisor"; reference code github.com/ICTMCG/ARG, models/arg.py + models/layers.py), generalised from the paper's two
rationale perspectives to N, so that Argus can print its own step time beside this one.

One step = zero_grad, forward (train mode: dropout on, BatchNorm on batch statistics), loss, backward, Adam step
(lr 5e-5, weight decay 5e-5, trainable parameters only). The batch is random but shaped like the real one.

  --mode cached  the work of Argus's incremental retrain: news and rationale frozen-layer states (B,L,D) are random
                 tensors (as if read from the feature cache); only the LAST BERT layer of the news encoder and of the
                 shared rationale encoder (two copies of transformers' BertLayer, loaded from the folder's last layer)
                 plus the ARG head run and train.
  --mode full    what the reference does every step: token ids go through the whole BERT (embeddings, all layers;
                 only the last layer trainable) for the news and for each rationale, then the head.

    .venv-peers/bin/python benches/peers/arg_step_torch.py --bert-dir models/all-MiniLM-L6-v2 \
        --batch 64 --len 170 --perspectives 3 --threads 1 --steps 5 --warmup 1 --mode cached

Prints one JSON line on stdout (per-step seconds and their median); diagnostics go to stderr.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertLayer


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class MaskAttention(nn.Module):
    """Attention pooling: Linear(D->1) scores, masked with -inf where mask == 0 (if a mask is given), softmax over L."""

    def __init__(self, d):
        super().__init__()
        self.score = nn.Linear(d, 1)

    def forward(self, x, mask=None):  # x (B,L,D) -> (B,D)
        s = self.score(x).squeeze(-1)
        if mask is not None:
            s = s.masked_fill(mask == 0, float("-inf"))
        return torch.bmm(torch.softmax(s, -1).unsqueeze(1), x).squeeze(1)


class CrossAttention(nn.Module):
    """One-head attention (Q, K, V, out: Linear D->D; d_k = D; dropout 0.1 on the probabilities; only key padding
    masked), as the reference's SelfAttentionFeatureExtract(1, D). Returns the mean over ALL query positions."""

    def __init__(self, d):
        super().__init__()
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(0.1)

    def forward(self, q, kv, kv_mask):  # q (B,Lq,D), kv (B,Lk,D), kv_mask (B,Lk) -> (B,D)
        s = torch.bmm(self.q(q), self.k(kv).transpose(1, 2)) / math.sqrt(q.size(-1))
        s = s.masked_fill(kv_mask.unsqueeze(1) == 0, float("-inf"))
        p = self.drop(torch.softmax(s, -1))
        return self.out(torch.bmm(p, self.v(kv))).mean(1)


def mlp2(d, h, o):  # Linear d->h, ReLU, Linear h->o (usefulness evaluator and judgement predictor)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, o))


def gate_mlp(d):  # reweighting score mapper D->384->64->1 with BatchNorm, ReLU, dropout 0.2; sigmoid applied later
    return nn.Sequential(nn.Linear(d, 384), nn.BatchNorm1d(384), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(384, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1))


class Perspective(nn.Module):
    """Everything ARG has once per rationale perspective r."""

    def __init__(self, d):
        super().__init__()
        self.r_to_x = CrossAttention(d)  # Q = rationale, K = V = news  -> expert feature f_{r->x}
        self.x_to_r = CrossAttention(d)  # Q = news, K = V = rationale  -> f_{x->r}
        self.useful = mlp2(d, 384, 1)    # usefulness evaluator (sigmoid, BCE vs r_acc)
        self.judge_pool = MaskAttention(d)  # unmasked pooling, as in the reference
        self.judge = mlp2(d, 384, 3)     # LLM-judgement logits (CE vs r_pred)
        self.gate = gate_mlp(d)


class ARGHead(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        self.persp = nn.ModuleList(Perspective(d) for _ in range(n))
        self.content_pool = MaskAttention(d)
        self.aggregator = MaskAttention(d)
        self.classifier = nn.Sequential(nn.Linear(d, 384), nn.ReLU(), nn.Dropout(0.2), nn.Linear(384, 1))

    def forward(self, x, x_mask, rats, r_masks, label, r_acc, r_pred):
        rows = [self.content_pool(x, x_mask)]
        use_losses, judge_losses = [], []
        for i, p in enumerate(self.persp):
            r, rm = rats[i], r_masks[i]
            expert = p.r_to_x(r, x, x_mask)
            m = p.x_to_r(x, r, rm)
            use_losses.append(F.binary_cross_entropy(torch.sigmoid(p.useful(m)).squeeze(1), r_acc[:, i]))
            judge_losses.append(F.cross_entropy(p.judge(p.judge_pool(r)), r_pred[:, i]))
            rows.append(torch.sigmoid(p.gate(m)) * expert)
        final = self.aggregator(torch.stack(rows, 1))  # over [news, N gated rationale features]
        y_hat = torch.sigmoid(self.classifier(final)).squeeze(1)
        loss = F.binary_cross_entropy(y_hat, label)
        if self.persp:
            loss = loss + 1.5 * torch.stack(use_losses).mean() + 1.0 * torch.stack(judge_losses).mean()
        return loss


def last_layer(cfg, weights, idx):
    """A standalone BertLayer with the weights of encoder layer `idx` from the folder's safetensors."""
    layer = BertLayer(cfg, layer_idx=idx)
    pre = f"encoder.layer.{idx}."
    sd = {k.split(pre, 1)[1]: v for k, v in weights.items() if pre in k}
    layer.load_state_dict(sd, strict=True)
    return layer


def additive_mask(mask):  # (B,L) 1/0 -> (B,1,1,L) 0 / -big, the form BertLayer's attention adds to its scores
    return (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert-dir", required=True, help="BERT folder with config.json + model.safetensors")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--len", type=int, default=170)
    ap.add_argument("--perspectives", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--mode", choices=["cached", "full"], default="cached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fill", type=float, default=0.5, help="fraction of real tokens per row (the rest is padding)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    B, L, N = a.batch, a.len, a.perspectives

    cfg = BertConfig.from_pretrained(a.bert_dir)
    cfg._attn_implementation = "sdpa"  # what BertModel.from_pretrained picks by default
    D, last = cfg.hidden_size, cfg.num_hidden_layers - 1

    # Encoders. The reference keeps two BERTs: one for the news, one shared by all rationales.
    if a.mode == "cached":
        w = load_file(os.path.join(a.bert_dir, "model.safetensors"))
        enc_x, enc_r = last_layer(cfg, w, last), last_layer(cfg, w, last)
    else:
        enc_x = BertModel.from_pretrained(a.bert_dir, attn_implementation="sdpa")
        enc_r = BertModel.from_pretrained(a.bert_dir, attn_implementation="sdpa")
        for enc in (enc_x, enc_r):  # train only the last encoder layer, as the reference does
            for name, prm in enc.named_parameters():
                prm.requires_grad = name.startswith(f"encoder.layer.{last}.")
    head = ARGHead(D, N)
    model = nn.ModuleDict({"enc_x": enc_x, "enc_r": enc_r, "head": head}).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=5e-5, weight_decay=5e-5)
    log(f"arg_step_torch: mode={a.mode} B={B} L={L} N={N} D={D} threads={torch.get_num_threads()} "
        f"trainable={sum(p.numel() for p in params)} (head {sum(p.numel() for p in head.parameters())})")

    # A random batch. Each row has round(fill*L) real tokens at the front, then padding (mask 0, token id 0).
    n_real = max(1, min(L, round(a.fill * L)))
    mask = torch.zeros(B, L)
    mask[:, :n_real] = 1.0
    masks = [mask.clone() for _ in range(N + 1)]  # [news, r_1..r_N]
    label = torch.randint(0, 2, (B,)).float()
    r_acc = torch.randint(0, 2, (B, max(N, 1))).float()
    r_pred = torch.randint(0, 3, (B, max(N, 1)))
    if a.mode == "cached":  # frozen-layer states, as if read from the cache
        inputs = [torch.randn(B, L, D) for _ in range(N + 1)]
    else:
        inputs = [torch.randint(1, cfg.vocab_size, (B, L)) * m.long() for m in masks]

    def encode(enc, inp, m):
        if a.mode == "cached":
            return enc(inp, attention_mask=additive_mask(m))
        return enc(inp, attention_mask=m).last_hidden_state  # reference passes the float 1/0 mask

    def step():
        opt.zero_grad(set_to_none=True)
        x = encode(enc_x, inputs[0], masks[0])
        rats = [encode(enc_r, inputs[i + 1], masks[i + 1]) for i in range(N)]  # shared encoder, one call each
        loss = head(x, masks[0], rats, masks[1:], label, r_acc, r_pred)
        loss.backward()
        opt.step()
        return loss.item()

    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
        log(f"  step {i} ({'warmup' if i < a.warmup else 'timed'}): {dt:.3f}s loss={loss:.4f}")

    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "mode": a.mode, "batch": B, "len": L, "perspectives": N,
        "threads": torch.get_num_threads(), "hidden": D, "step_secs": times,
        "median_secs": statistics.median(times) if times else None,
    }))


if __name__ == "__main__":
    main()
