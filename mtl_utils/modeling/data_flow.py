"""A batch's shapes stage by stage through the multi-task model (all but the heads shared). Taught in notebook 03."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from mtl_utils.core.batching import eval_mode
from mtl_utils.modeling.model import MultiTaskModel


def data_flow(model: MultiTaskModel, sentences: Sequence[str]) -> pd.DataFrame:
    """Run ``sentences`` through the model once and list each stage with the shape it produced."""
    batch = model.encoder.tokenize(list(sentences))
    rows = [{"stage": "word-piece ids (padded)", "module": "tokenizer", "shape": list(batch["input_ids"].shape),
             "shared": "yes"}]
    with eval_mode(model), torch.inference_mode():
        out = model.encoder.transformer(**batch, output_hidden_states=True)
        rows.append({"stage": "token vectors after embeddings", "module": "transformer.embeddings",
                     "shape": list(out.hidden_states[0].shape), "shared": "yes"})
        for i, hidden in enumerate(out.hidden_states[1:]):
            rows.append({"stage": f"token vectors after layer {i + 1}", "module": f"encoder.layer[{i}]",
                         "shape": list(hidden.shape), "shared": "yes"})
        vectors = model.encoder.pool_tokens(out.last_hidden_state, batch["attention_mask"])
        rows.append({"stage": f"sentence vectors ({model.encoder.pooling} pooling)", "module": "pooling",
                     "shape": list(vectors.shape), "shared": "yes"})
        for name, logits in model.heads_forward(vectors).items():
            rows.append({"stage": f"{name} logits ({', '.join(model.task_labels[name])})",
                         "module": f"heads['{name}']", "shape": list(logits.shape), "shared": f"no: {name} only"})
    return pd.DataFrame(rows)
