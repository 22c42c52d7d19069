"""GPU benchmark of the pipeline's batching: BERT-large (random weights, fp16, PyTorch) on the windows
`bertqa.qa.windows` makes, padded (a) all to max_seq_length, as the article's sample did, or (b) sorted by
length and padded per batch to the next multiple of 64, as the pipeline does. Prints windows/s and
questions/s, and checks that padding does not change the logits of real tokens.

Runs where PyTorch with CUDA and `tokenizers` are installed (no Beam needed):
  python benchmarks/gpu_padding.py --questions=4000 --batch=64
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "template"))

from bertqa.demo import data  # noqa: E402
from bertqa.qa.windows import Featurizer, WindowSettings, pad_batch, padded_length  # noqa: E402
from bertqa.qa.tokenization import parse_vocab, wordpiece


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max_seq_length", type=int, default=384)
    args = parser.parse_args()

    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    with open(os.path.join(ROOT, "demo", "vocab.txt"), encoding="utf-8") as handle:
        vocab = parse_vocab(handle.read())
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(args.max_seq_length, 128, 64))
    records = list(data.generate(seed=5, passages=args.questions // 4 + 1, long_share=0.5))[: args.questions]
    windows = [w for r in records for w in featurizer.windows(r["id"], r["question"],
                                                               featurizer.tokenize_passage(r["context"]))]
    config = BertConfig(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                        intermediate_size=4096, max_position_embeddings=512)
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config).half().cuda().eval()
    device = torch.cuda.get_device_name(0)

    def run(batches, fixed):
        total = 0
        for batch in batches:
            length = fixed or padded_length(max(w.length for w in batch))
            ids, mask, types = (torch.from_numpy(a).long().cuda() for a in pad_batch(batch, length))
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            total += out.start_logits.shape[0] * length
        torch.cuda.synchronize()
        return total, out

    by_length = sorted(windows, key=lambda w: padded_length(w.length))
    plans = {
        f"padded to {args.max_seq_length}": ([windows[i:i + args.batch] for i in range(0, len(windows), args.batch)],
                                             args.max_seq_length),
        "sorted, padded to x64": ([by_length[i:i + args.batch] for i in range(0, len(by_length), args.batch)], None),
    }
    mean = np.mean([w.length for w in windows])
    print(f"{device}: {len(records)} questions, {len(windows)} windows, mean window {mean:.0f} tokens, "
          f"BERT-large fp16, batch {args.batch}")
    with torch.inference_mode():
        for name, (batches, fixed) in plans.items():
            run(batches[:3], fixed)  # warm-up
            began = time.perf_counter()
            tokens, _ = run(batches, fixed)
            elapsed = time.perf_counter() - began
            print(f"{name:24s} {len(windows) / elapsed:9.1f} windows/s {len(records) / elapsed:9.1f} questions/s "
                  f"{tokens / len(windows):6.0f} padded tokens/window  ({elapsed:.2f} s)")
        # Same window alone at its own length vs padded to max_seq_length: real-token logits agree.
        window = max(windows[:50], key=lambda w: w.length)
        _, short = run([[window]], None)
        _, long = run([[window]], args.max_seq_length)
        n = window.length
        diff = (short.start_logits[0, :n].float() - long.start_logits[0, :n].float()).abs().max().item()
        print(f"padding check: max |start logit difference| over real tokens = {diff:.2e} (fp16)")


if __name__ == "__main__":
    main()
