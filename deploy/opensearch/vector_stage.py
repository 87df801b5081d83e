"""A local trial, not part of the package: the vector stage of several indexes of the same catalog (FAISS first,
then any of `--vectors elasticsearch` on 7.10 or 8.x and `--vectors opensearch`), in one run, interleaved per
query, and each cluster index's recall@10 against the FAISS index (exact when it is `flat`).

Usage: .venv/bin/python deploy/opensearch/vector_stage.py QUERIES FAISS_IDX NAME=IDX [NAME=IDX ...]
(one text query a line; SHOPLENS_ES_URL / SHOPLENS_OS_URL set for the clusters the indexes live on), e.g.
`... Q faiss-idx elasticsearch=es-idx opensearch=os-idx` or `... Q faiss-idx es8=es8-idx`. Each query is
encoded once; then each index runs the engine's dense stage (joint and text-native searches of 200 candidates);
one warm-up pass.
"""
import sys, time
import numpy as np
from shoplens.engine.search import SearchEngine
from shoplens.indexers.encoders import create_encoder

queries = [l.strip() for l in open(sys.argv[1]) if l.strip()]
encoder = create_encoder(device="cpu")
paths = {"faiss": sys.argv[2], **dict(arg.split("=", 1) for arg in sys.argv[3:])}
names = list(paths)
engines = {n: SearchEngine(p, device="cpu", encoder=encoder) for n, p in paths.items()}
joint, native = encoder.encode_texts_native(queries)
times = {n: [] for n in names}
rec = {(n, space): [] for n in names[1:] for space in ("joint", "native")}
for warm in (True, False):
    for i in range(len(queries)):
        found = {}
        for n in names:
            snap = engines[n].snapshot
            t = time.perf_counter()
            a = snap.vectors.search(joint[i], 200)
            b = snap.text_native.search(native[i], 200)
            dt = (time.perf_counter() - t) * 1000
            found[n] = (a, b)
            if not warm:
                times[n].append(dt)
        if not warm:
            for n in names[1:]:
                for space, j in (("joint", 0), ("native", 1)):
                    want = set(found["faiss"][j][0][:10].tolist())
                    rec[(n, space)].append(len(want & set(found[n][j][0][:10].tolist())) / 10)
print(f"{len(queries)} queries, joint + text-native search of 200 candidates each; ms")
print(f"{'backend':15s} {'p50':>8s} {'p95':>8s} {'p99':>8s}")
for n in names:
    v = np.array(times[n]); print(f"{n:15s} {np.percentile(v,50):8.2f} {np.percentile(v,95):8.2f} {np.percentile(v,99):8.2f}")
for n in names[1:]:
    print(f"p50 ratio {n}/faiss: {np.percentile(times[n],50)/np.percentile(times['faiss'],50):.1f}x")
for (n, s), v in rec.items():
    print(f"{n} recall@10 vs FAISS, {s}: mean {np.mean(v):.3f}, min {np.min(v):.2f}")
