"""deepen.py SRC_ARTIFACT DEST NEW_NUM_CONV: SRVGG sharp end with identity conv+PReLU(1) pairs interleaved
(same function, more capacity to fine-tune)."""
import sys
import numpy as np
from pathlib import Path
from model.artifacts import read_manifest, read_weights, save_artifact
src, dest, new = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
m = read_manifest(src)
w = read_weights(src, m.weights)
n, f = m.params["num_conv"], m.params["num_feat"]
extra = new - n
pairs = [(w[f"body_{2*i}/kernel"], w[f"body_{2*i}/bias"], w[f"body_{2*i+1}/alpha"]) for i in range(n + 1)]
ident = np.zeros((3, 3, f, f), np.float32); ident[1, 1] = np.eye(f)
idpair = (ident, np.zeros(f, np.float32), np.ones_like(pairs[0][2]))
out = []
for i, p in enumerate(pairs):
    out.append(p)
    if i < extra:
        out.append(idpair)
nw = {}
for j, (k, b, a) in enumerate(out):
    nw[f"body_{2*j}/kernel"], nw[f"body_{2*j}/bias"], nw[f"body_{2*j+1}/alpha"] = k, b, a
nw[f"body_{2*new+2}/kernel"], nw[f"body_{2*new+2}/bias"] = w[f"body_{2*n+2}/kernel"], w[f"body_{2*n+2}/bias"]
save_artifact(dest, nw, name=dest.name, arch="srvgg", params={**m.params, "num_conv": new}, scale=m.scale,
              license=m.license, description=f"{m.name} deepened to {new} convs")
print(sorted(w)[:4], len(w), len(nw))
