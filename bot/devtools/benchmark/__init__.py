"""The benchmark harness (`make bench`, `python -m bot.cli bench [--skip-train]`).

Measures, against the real stack started on free ports with a temporary tracker database:

- `retrieval_accuracy`: dev-set top-1 (article questions) of the assistant through REST and of
  three baselines (baselines.py): BM25 over the article's passages, nearest passage by the shipped
  embedding model, and Rasa's default pipeline trained on the same NLU data;
- `latency_ms`: single-user REST round trips (p50, p95) after a warm-up (load.py);
- `throughput_msg_s` with 8 and 32 concurrent conversations, and `errors` (load.py);
- `train_s`: a full `rasa train --force` into a temporary directory (training.py);
  `rss_mb` of both servers (profile.py);
- `semantic_layer`: what the semantic warning-sign layer adds to one NLU parse, p50/p95 with and
  without it, in-process, on the dev set's questions and with the stress set's long messages
  added (nlu_cost.py; issue 14 allows a p95 rise of at most 10 ms).

run.py ties them together and writes `reports/bench.json` and `reports/latency.png`;
report.py builds the report, its Markdown table and the plot.
"""
