"""Plain-Python reference for the eviction kernels: the DESIGN.md definitions, written for
clarity, with full scans where the kernels use heaps and lists. Same fixed-point weights
(int units of 2^-24), so kernel and reference must agree exactly.

A row is (bg, extras): key j ≤ t has weight bg + extras.get(j, 0); model traces dense or compact.
"""
import heapq

MASK = (1 << 64) - 1
ONE = 1 << 24


def jitter(seed, t, i):
    x = (seed * 0x9E3779B97F4A7C15 + t * 0xBF58476D1CE4E5B9 + i * 0x94D049BB133111EB) & MASK
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & MASK
    x ^= x >> 32
    return x & 1023


def synthetic_row(trace, t):
    sink_count, sink_q, heavy_total, seed, bg_total, life = (int(v) for v in trace.sp)
    live = [i for i, p in enumerate(trace.heavy) if p < t and (life == 0 or t - p <= life)]
    unit = heavy_total // max(1, len(live))
    extras = {}

    def add(j, w):
        extras[j] = extras.get(j, 0) + w

    for age, w in enumerate(trace.loc):
        if age <= t:
            add(t - age, int(w))
    for j in range(min(sink_count, t + 1)):
        add(j, sink_q)
    for i in live:
        add(int(trace.heavy[i]), (unit * (512 + jitter(seed, t, i))) >> 10)
    return bg_total // (t + 1), {j: w for j, w in extras.items() if w > 0}


def model_row(trace, t):
    return 0, {j: int(trace.weights[t, j]) for j in range(t + 1) if trace.weights[t, j] > 0}


def sparse_row(trace, t):
    """A compact model trace's row t: [bg, count, keys (keep), extras (keep)] (kernels/eviction/sparse.py)."""
    line = [int(x) for x in trace.weights[t]]
    keep = (len(line) - 2) // 2
    bg, count = line[0], line[1]
    return bg, {line[2 + e]: line[2 + keep + e] for e in range(count)}


def row(trace, t):
    return {0: model_row, 1: synthetic_row, 2: sparse_row}[trace.kind](trace, t)


def row_weights(trace):
    """Every row as a dense list over keys 0..t (what the oracle's plan reads), from the rows above."""
    out = []
    for t in range(trace.n):
        bg, extras = row(trace, t)
        out.append([bg + extras.get(j, 0) for j in range(t + 1)] + [0] * (trace.n - 1 - t))
    return out


def timeline_stride(n):
    return max(1, -(-n // 2000))


def simulate(policy, trace, capacity, sinks, window, tau, plan_end=None, steps=None, rule=None):
    """policy "rule": a user rule (tests/test_custom_policies.py), `rule` = (on_enter, on_attention or None,
    protect_first, protect_recent, run) with plain Python functions."""
    n = trace.n if steps is None else steps
    cached = []  # positions, oldest first
    score, last = {}, {}
    out = dict(accesses=0, hits=0, misses=0, evictions=0)
    recall_sum = 0.0
    evicted_at = [-1] * trace.n
    stride = timeline_stride(trace.n)
    timeline, bucket, bucket_n = [], 0.0, 0
    for t in range(n):
        bg, extras = row(trace, t)

        def weight(j):
            return bg + extras.get(j, 0)

        # 2. accounting
        in_cache = set(cached)
        accessed = range(t) if bg >= tau else sorted(j for j in extras if j < t and weight(j) >= tau)
        for j in accessed:
            out["accesses"] += 1
            out["hits" if j in in_cache else "misses"] += 1
        fixed = int(trace.fixed[t]) if t < len(trace.fixed) else 0  # a learned sink: always kept, never accessed
        total = bg * (t + 1) + sum(extras.values()) + fixed
        kept = sum(weight(j) for j in cached) + weight(t) + fixed
        recall = 1.0 if total == 0 else kept / total
        recall_sum += recall
        bucket += recall
        bucket_n += 1
        # 3. the policy observes cached keys only
        if policy == "h2o":
            for j in cached:
                score[j] += weight(j)
        if policy == "lru":
            for j in accessed:
                if j in in_cache:
                    last[j] = t
        # 4. key t enters; evict while over budget
        cached.append(t)
        score[t] = weight(t)
        last[t] = t
        if policy == "rule":  # the new key enters with on_enter, then every cached key is rescored
            score[t] = float(rule[0](t, rule[4]))
            for j in cached if rule[1] else ():
                score[j] = float(rule[1](score[j], weight(j) / ONE, t - j, t, rule[4]))
        if policy != "full" and len(cached) > capacity:
            if policy == "sliding_window":
                victim = min(cached)
            elif policy == "streaming_llm":
                victim = min(j for j in cached if j >= sinks)
            elif policy == "h2o":
                victim = min((score[j], j) for j in cached if j <= t - window)[1]
            elif policy == "lru":
                victim = min((last[j], j) for j in cached)[1]
            elif policy == "tova":
                victim = min((weight(j), j) for j in cached)[1]
            elif policy == "oracle":
                victim = min((plan_end[j], j) for j in cached)[1]
            elif policy == "rule":
                victim = min((score[j], j) for j in cached if j >= rule[2] and t - j >= rule[3])[1]
            else:
                raise ValueError(policy)
            cached.remove(victim)
            out["evictions"] += 1
            evicted_at[victim] = t
        if (t + 1) % stride == 0 or t == trace.n - 1:
            timeline.append((t, len(cached), bucket / bucket_n, out["misses"]))
            bucket, bucket_n = 0.0, 0
        assert len(cached) <= max(capacity, 0) or policy == "full"
    out.update(tokens_processed=n, cached=len(cached), recall_sum=recall_sum, kept=sorted(cached),
               timeline=timeline, evicted_at=evicted_at)
    return out


def accesses_by_key(weights, tau):
    n = len(weights)
    return [[t for t in range(j + 1, n) if weights[t][j] >= tau] for j in range(n)]


def oracle_plan(weights, capacity, tau):
    """The same min-cost flow as kernels/eviction/oracle.py, step for step (same arc order,
    same Dijkstra tie order), so the plans agree exactly."""
    n = len(weights)
    acc = accesses_by_key(weights, tau)
    arcs = []  # [tail, head, cap, cost]; arc 2m forward, 2m + 1 its residual twin

    def add(u, v, c, w):
        arcs.append([u, v, c, w])
        arcs.append([v, u, 0, -w])
        return len(arcs) - 2

    node = {}  # (key, k) → chain node id
    k_next = n + 1
    for j in range(n):
        for k in range(len(acc[j])):
            node[j, k] = k_next
            k_next += 1
    for s in range(n):
        add(s, s + 1, capacity, 0)
    entry, chain = {}, {}
    for j in range(n):
        if not acc[j]:
            continue
        entry[j] = add(j, node[j, 0], 1, -1)
        for k, t in enumerate(acc[j]):
            add(node[j, k], t, 1, 0)
            if k + 1 < len(acc[j]):
                chain[j, k] = add(node[j, k], node[j, k + 1], 1, -1)
    nv = k_next
    out_arcs = [[] for _ in range(nv)]
    for a, (u, _, _, _) in enumerate(arcs):
        out_arcs[u].append(a)
    time_of = {v: t for (j, k), v in node.items() for t in [acc[j][k]]}
    # potentials: DAG shortest paths, in time order, chain nodes before the timeline node
    inf = float("inf")
    pot = [inf] * nv
    pot[0] = 0
    order = []
    for s in range(n + 1):
        order += sorted(v for v, t in time_of.items() if t == s)
        order.append(s)
    for u in order:
        if pot[u] == inf:
            continue
        for a in out_arcs[u]:
            _, v, c, w = arcs[a]
            if a % 2 == 0 and c > 0 and pot[u] + w < pot[v]:
                pot[v] = pot[u] + w
    sent = 0
    while sent < capacity:
        dist, pred, done = [inf] * nv, [-1] * nv, [False] * nv
        dist[0] = 0
        heap = [(0, 0)]
        while heap:
            d, u = heapq.heappop(heap)
            if done[u]:
                continue
            done[u] = True
            if u == n:
                break
            for a in out_arcs[u]:
                _, v, c, w = arcs[a]
                if c > 0 and dist[u] + w + pot[u] - pot[v] < dist[v]:
                    dist[v] = dist[u] + w + pot[u] - pot[v]
                    pred[v] = a
                    heapq.heappush(heap, (dist[v], v))
        if dist[n] == inf:
            break
        pot = [p + min(d, dist[n]) for p, d in zip(pot, dist)]
        if pot[n] - pot[0] >= 0:
            break
        f, v = capacity - sent, n
        while v != 0:
            f = min(f, arcs[pred[v]][2])
            v = arcs[pred[v]][0]
        v = n
        while v != 0:
            arcs[pred[v]][2] -= f
            arcs[pred[v] ^ 1][2] += f
            v = arcs[pred[v]][0]
        sent += f
    plan_end = list(range(n))
    for j, a in entry.items():
        if arcs[a][2] == 0:
            k = 0
            while (j, k) in chain and arcs[chain[j, k]][2] == 0:
                k += 1
            plan_end[j] = acc[j][k]
    return plan_end


def best_hits_brute_force(weights, capacity, tau):
    """The most hits any eviction sequence gets: try every choice (tiny traces only)."""
    n = len(weights)

    def go(t, cached):
        hits = sum(1 for j in cached if weights[t][j] >= tau)
        cached = cached + (t,)
        if t == n - 1:
            return hits
        if len(cached) <= capacity:
            return hits + go(t + 1, cached)
        return hits + max(go(t + 1, tuple(k for k in cached if k != v)) for v in cached)

    return go(0, ())


def key_totals(trace):
    """after[j] = attention from queries t > j; self_w[j] = A[j, j]."""
    after, self_w = [0] * trace.n, [0] * trace.n
    for t in range(trace.n):
        bg, extras = row(trace, t)
        for j in range(t + 1):
            w = bg + extras.get(j, 0)
            if j == t:
                self_w[j] = w
            else:
                after[j] += w
    return after, self_w


def sinks(trace, threshold):
    after, _ = key_totals(trace)
    # mean over the queries after j ≥ threshold, compared without division so it is exact
    return [j for j in range(trace.n) if trace.n - 1 - j > 0 and after[j] >= threshold * (trace.n - 1 - j)]


def heavy_hitters(trace, k):
    after, self_w = key_totals(trace)
    ranked = sorted(range(trace.n), key=lambda j: (-(after[j] + self_w[j]), j))
    return sorted(ranked[:k])
