"""Compiled (numba) kernels of the pyradiomics-compatible feature families.

A single-slice CT ROI of a few hundred voxels spends its time in per-call overhead, not voxel work: ~170
small numpy reductions and ~40 formulas per family.  Each kernel here does one family in one compiled pass:
the matrix construction (a loop over the object voxels and their neighbours, flat index ± stride) and every
feature of every direction, returned as one array.  The formulas are those of the numpy implementation they
replace (pyradiomics' definitions); the reference tests check them against pyradiomics' own output.

Kernels are compiled on first use and cached on disk (``cache=True``: next to this file, or in the user's
cache folder when site-packages is read-only, or under ``NUMBA_CACHE_DIR``), so a CLI run loads them instead
of compiling them.  Where no cache folder is writable at all they are compiled in each process.  They release
the GIL (``nogil=True``): the thread pool of :func:`~napari_medimg.measure.compute_features` runs objects in
parallel.
"""

from __future__ import annotations

import math

import numba
import numpy as np

EPS = float(np.spacing(1))


def _jit(function):
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(function)
    except RuntimeError:  # no writable cache location anywhere: compile in each process
        return numba.njit(nogil=True, error_model="numpy")(function)


@_jit
def _percentile(ordered, q):
    """numpy's default (linear) percentile of a sorted array."""
    n = ordered.shape[0]
    index = (q / 100.0) * (n - 1)
    below = int(math.floor(index))
    above = min(below + 1, n - 1)
    t = index - below
    a, b = ordered[below], ordered[above]
    difference = b - a
    return b - difference * (1.0 - t) if t >= 0.5 else a + difference * t


@_jit
def digitize_edges(values, edges):
    """``np.digitize(values, edges)`` for increasing, evenly spaced edges: the number of edges <= each value."""
    n = edges.shape[0]
    start, width = edges[0], edges[1] - edges[0]
    out = np.empty(values.shape[0], np.int64)
    for k in range(values.shape[0]):
        v = values[k]
        b = min(max(int(math.floor((v - start) / width)) + 1, 0), n)
        while b > 0 and v < edges[b - 1]:  # exact against the edges themselves, whatever the rounding
            b -= 1
        while b < n and v >= edges[b]:
            b += 1
        out[k] = b
    return out


@_jit
def rank_levels(bins):
    """Sorted distinct bin numbers and the 1-based rank of each value among them (``np.unique`` + 1)."""
    low = bins.min()
    rank = np.zeros(bins.max() - low + 1, np.int64)
    for b in bins:
        rank[b - low] = 1
    count = 0
    for k in range(rank.shape[0]):
        if rank[k]:
            count += 1
            rank[k] = count
    levels = np.empty(count, np.int64)
    for k in range(rank.shape[0]):
        if rank[k]:
            levels[rank[k] - 1] = k + low
    ranks = np.empty(bins.shape[0], np.int32)
    for k in range(bins.shape[0]):
        ranks[k] = rank[bins[k] - low]
    return levels, ranks


@_jit
def firstorder_kernel(x, ordered, bins, voxel_volume):
    """The 19 first-order features, in ``FIRSTORDER_FEATURES`` order (``ordered``: ``x`` sorted)."""
    n = x.shape[0]
    mean = 0.0
    energy = 0.0
    for k in range(n):
        mean += x[k]
        energy += x[k] * x[k]
    mean /= n
    m2 = m3 = m4 = mad = 0.0
    for k in range(n):
        d = x[k] - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        mad += abs(d)
    m2, m3, m4, mad = m2 / n, m3 / n, m4 / n, mad / n
    p10 = _percentile(ordered, 10.0)
    p25 = _percentile(ordered, 25.0)
    p50 = _percentile(ordered, 50.0)
    p75 = _percentile(ordered, 75.0)
    p90 = _percentile(ordered, 90.0)
    robust_sum = 0.0
    robust_count = 0
    for k in range(n):
        if x[k] >= p10 and x[k] <= p90:
            robust_sum += x[k]
            robust_count += 1
    rmad = np.nan  # no value between the 10th and 90th percentiles (two values)
    if robust_count > 0:
        robust_mean = robust_sum / robust_count
        rmad = 0.0
        for k in range(n):
            if x[k] >= p10 and x[k] <= p90:
                rmad += abs(x[k] - robust_mean)
        rmad /= robust_count
    low = bins.min()
    counts = np.zeros(bins.max() - low + 1)
    for k in range(n):
        counts[bins[k] - low] += 1.0
    entropy = 0.0
    uniformity = 0.0
    for c in counts:
        if c > 0:
            p = c / n
            entropy -= p * math.log2(p + EPS)
            uniformity += p * p
    out = np.empty(19)
    out[0] = p10
    out[1] = p90
    out[2] = energy
    out[3] = entropy
    out[4] = p75 - p25
    out[5] = m4 / m2**2 if m2 != 0 else 0.0
    out[6] = ordered[n - 1]
    out[7] = mad
    out[8] = mean
    out[9] = p50
    out[10] = ordered[0]
    out[11] = ordered[n - 1] - ordered[0]
    out[12] = rmad
    out[13] = math.sqrt(energy / n)
    out[14] = m3 / m2**1.5 if m2 != 0 else 0.0
    out[15] = energy * voxel_volume
    out[16] = uniformity
    out[17] = m2
    out[18] = math.sqrt(m2)
    return out


@_jit
def _entropy(p):
    total = 0.0
    for v in p:
        total -= v * math.log2(v + EPS)
    return total


@_jit
def glcm_kernel(flat, positions, strides, levels, max_level):
    """Normalised symmetric GLCM per direction and its 24 features (``TEXTURE_FEATURES["glcm"]`` order).

    A direction without any pair gets an all-zero matrix and NaN features (pyradiomics drops it); the MCC
    column (19) is left NaN for the caller (it needs eigenvalues).
    """
    A = strides.shape[0]
    n = levels.shape[0]
    Ng = max_level
    P = np.zeros((A, n, n))
    out = np.full((A, 24), np.nan)
    px = np.empty(n)
    py = np.empty(n)
    p_sum = np.empty(2 * Ng + 1)
    p_diff = np.empty(Ng)
    for a in range(A):
        s = strides[a]
        M = P[a]
        total = 0.0
        for p in positions:
            r = flat[p] - 1
            q = flat[p + s] - 1
            w = 1.0 * (q >= 0)  # outside the object, q = -1 adds 0 to the last row / column
            M[r, q] += w
            M[q, r] += w
            total += 2.0 * w
        if total == 0:
            continue
        px[:] = 0.0
        py[:] = 0.0
        for i in range(n):
            for j in range(n):
                M[i, j] /= total
                px[i] += M[i, j]
                py[j] += M[i, j]
        ux = 0.0
        uy = 0.0
        for i in range(n):
            ux += px[i] * levels[i]
            uy += py[i] * levels[i]
        p_sum[:] = 0.0
        p_diff[:] = 0.0
        autocorrelation = prominence = shade = tendency = contrast = 0.0
        sx = sy = corm = energy = hxy = hxy1 = hxy2 = 0.0
        maximum = 0.0
        for i in range(n):
            gi = levels[i]
            for j in range(n):
                gj = levels[j]
                v = M[i, j]
                pp = px[i] * py[j]
                hxy1 -= v * math.log2(pp + EPS)
                hxy2 -= pp * math.log2(pp + EPS)
                if v == 0:
                    continue
                p_sum[int(gi + gj)] += v
                p_diff[int(abs(gi - gj))] += v
                autocorrelation += v * gi * gj
                c = gi + gj - ux - uy
                c2 = c * c
                tendency += v * c2
                shade += v * c2 * c
                prominence += v * c2 * c2
                contrast += v * (gi - gj) ** 2
                sx += v * (gi - ux) ** 2
                sy += v * (gj - uy) ** 2
                corm += v * (gi - ux) * (gj - uy)
                energy += v * v
                hxy -= v * math.log2(v + EPS)
                maximum = max(maximum, v)
        hx = _entropy(px)
        hy = _entropy(py)
        sigma = math.sqrt(sx) * math.sqrt(sy)
        difference_average = 0.0
        idm = idmn = id_ = idn = inverse_variance = 0.0
        for k in range(Ng):
            v = p_diff[k]
            difference_average += v * k
            idm += v / (1.0 + k * k)
            idmn += v / (1.0 + k * k / (Ng * Ng))
            id_ += v / (1.0 + k)
            idn += v / (1.0 + k / Ng)
            if k > 0:
                inverse_variance += v / (k * k)
        difference_variance = 0.0
        for k in range(Ng):
            difference_variance += p_diff[k] * (k - difference_average) ** 2
        sum_average = 0.0
        for k in range(2 * Ng + 1):
            sum_average += p_sum[k] * k
        div = max(hx, hy)
        if hxy2 == hxy:
            imc2 = 0.0
        else:
            arg = 1.0 - np.exp(-2.0 * (hxy2 - hxy))
            imc2 = math.sqrt(arg) if arg >= 0 else np.nan
        f = out[a]
        f[0] = autocorrelation
        f[1] = prominence
        f[2] = shade
        f[3] = tendency
        f[4] = contrast
        f[5] = 1.0 if sigma == 0 else corm / (sigma + EPS)
        f[6] = difference_average
        f[7] = _entropy(p_diff)
        f[8] = difference_variance
        f[9] = id_
        f[10] = idm
        f[11] = idmn
        f[12] = idn
        f[13] = (hxy - hxy1) / div if div != 0 else 0.0
        f[14] = imc2
        f[15] = inverse_variance
        f[16] = ux
        f[17] = energy
        f[18] = hxy
        f[20] = maximum
        f[21] = sum_average
        f[22] = _entropy(p_sum)
        f[23] = sx
    return P, out


@_jit
def mcc_kernel(P):
    """pyradiomics' maximal correlation coefficient averaged over the (non-empty, normalised) GLCMs ``P``.

    pyradiomics' Q = Dx⁻¹ P Dy⁻¹ Pᵀ (Dx, Dy: the diagonal marginals) is similar to the symmetric B Bᵀ with
    B = Dx^-½ P Dy^-½ (a row or column with a zero marginal is zero in P and adds nothing): same eigenvalues,
    from the symmetric solver.  MCC is the square root of the second largest; NaN ones are skipped.
    """
    A, n, _ = P.shape
    if n < 2:
        return 1.0  # flat region
    total = 0.0
    count = 0
    B = np.empty((n, n))
    rx = np.empty(n)
    ry = np.empty(n)
    for a in range(A):
        for i in range(n):
            sx = 0.0
            sy = 0.0
            for j in range(n):
                sx += P[a, i, j]
                sy += P[a, j, i]
            rx[i] = 1.0 / math.sqrt(sx) if sx > 0 else 0.0
            ry[i] = 1.0 / math.sqrt(sy) if sy > 0 else 0.0
        for i in range(n):
            for j in range(n):
                B[i, j] = P[a, i, j] * rx[i] * ry[j]
        second = np.linalg.eigvalsh(B @ B.T)[n - 2]
        if -1e-12 < second < 0:
            second = 0.0  # rounding below an exact 0
        if second >= 0:
            total += math.sqrt(second)
            count += 1
    return total / count if count else np.nan


@_jit
def run_matrix(flat, positions, strides, n, longest):
    """(direction, rank, run length) counts of the runs of equal rank along each (positive) stride.

    Positions ascend and every stride is positive, so a voxel's predecessor along the direction is visited
    first: its run length so far is the predecessor's plus one when the rank is the same; a run is counted
    where the next voxel differs.  Branch-free per voxel (the products by the comparisons).
    """
    A = strides.shape[0]
    P = np.zeros((A, n, longest))
    length = np.zeros(flat.shape[0], np.int64)
    for a in range(A):
        s = strides[a]
        if s == 1:  # along x the predecessor is the previous voxel: keep the length in a register
            run = 0
            for p in positions:
                r = flat[p]
                run = run * (flat[p - 1] == r) + 1
                P[a, r - 1, run - 1] += flat[p + 1] != r
            continue
        for p in positions:
            r = flat[p]
            run = length[p - s] * (flat[p - s] == r) + 1
            length[p] = run
            P[a, r - 1, run - 1] += flat[p + s] != r
    return P


@_jit
def nanmean_rows(values):
    """Mean over the rows (directions) of each column (feature), NaN entries skipped; NaN if none is left."""
    rows, columns = values.shape
    out = np.full(columns, np.nan)
    for c in range(columns):
        total = 0.0
        count = 0
        for r in range(rows):
            v = values[r, c]
            if not np.isnan(v):
                total += v
                count += 1
        if count:
            out[c] = total / count
    return out


@_jit
def size_features(P, i, Np):
    """The 16 (gray level × size) matrix features per direction, sizes 1, 2, … along the last axis of ``P``.

    In order: GLN, GLNN, GLV, HGLE, LE, LHGLE, LLGLE, LGLE, Entropy, SN, SNN, Percentage, Variance, SE, SHGLE,
    SLGLE (run, zone or dependence flavour).
    """
    A, n, m = P.shape
    j = np.arange(1, m + 1).astype(np.float64)
    out = np.full((A, 16), np.nan)
    pg = np.empty(n)
    ps = np.empty(m)
    for a in range(A):
        pg[:] = 0.0
        ps[:] = 0.0
        Nz = lhgle = llgle = shgle = slgle = 0.0
        for x in range(n):
            i2 = i[x] * i[x]
            for y in range(m):
                v = P[a, x, y]
                if v == 0:
                    continue
                j2 = j[y] * j[y]
                pg[x] += v
                ps[y] += v
                Nz += v
                lhgle += v * i2 * j2
                llgle += v * j2 / i2
                shgle += v * i2 / j2
                slgle += v / (i2 * j2)
        if Nz == 0:
            continue
        entropy = 0.0
        for x in range(n):
            for y in range(m):
                v = P[a, x, y]
                if v != 0:
                    p = v / Nz
                    entropy -= p * math.log2(p + EPS)
        ui = uj = 0.0
        gln = hgle = lgle = 0.0
        for x in range(n):
            ui += pg[x] * i[x]
            gln += pg[x] * pg[x]
            hgle += pg[x] * i[x] * i[x]
            lgle += pg[x] / (i[x] * i[x])
        ui /= Nz
        sn = le = se = 0.0
        for y in range(m):
            uj += ps[y] * j[y]
            sn += ps[y] * ps[y]
            le += ps[y] * j[y] * j[y]
            se += ps[y] / (j[y] * j[y])
        uj /= Nz
        glv = 0.0
        for x in range(n):
            glv += pg[x] * (i[x] - ui) ** 2
        variance = 0.0
        for y in range(m):
            variance += ps[y] * (j[y] - uj) ** 2
        f = out[a]
        f[0] = gln / Nz
        f[1] = gln / (Nz * Nz)
        f[2] = glv / Nz
        f[3] = hgle / Nz
        f[4] = le / Nz
        f[5] = lhgle / Nz
        f[6] = llgle / Nz
        f[7] = lgle / Nz
        f[8] = entropy
        f[9] = sn / Nz
        f[10] = sn / (Nz * Nz)
        f[11] = Nz / Np
        f[12] = variance / Nz
        f[13] = se / Nz
        f[14] = shgle / Nz
        f[15] = slgle / Nz
    return out


@_jit
def _root(parent, k):
    while parent[k] != k:
        parent[k] = parent[parent[k]]
        k = parent[k]
    return k


@_jit
def zone_matrix(flat, positions, strides, n):
    """(rank, zone size) counts of the connected zones of equal rank (neighbours: ± each stride)."""
    N = positions.shape[0]
    lookup = np.empty(flat.shape[0], np.int32)  # read only where flat[q] == r, i.e. at object voxels
    for k in range(N):
        lookup[positions[k]] = k
    parent = np.arange(N).astype(np.int32)
    for k in range(N):
        p = positions[k]
        r = flat[p]
        for s in strides:
            q = p - s  # already visited: its zone is settled up to the links made here
            if flat[q] == r:
                a = _root(parent, k)
                b = _root(parent, lookup[q])
                if a != b:
                    parent[max(a, b)] = min(a, b)
    sizes = np.zeros(N, np.int64)
    for k in range(N):
        sizes[_root(parent, k)] += 1
    largest = sizes.max()
    P = np.zeros((n, largest))
    for k in range(N):
        if sizes[k] > 0:
            P[flat[positions[k]] - 1, sizes[k] - 1] += 1.0
    return P


@_jit
def neighbourhood_kernel(flat, positions, strides, levels):
    """GLDM matrix (rank × dependence + 1) and the NGTDM voxel counts and summed differences per rank.

    Neighbours are ± each stride; the dependence of a voxel is the number of its neighbours in the object
    with its rank (alpha 0); voxels without any neighbour in the object are left out of the NGTDM.
    """
    n = levels.shape[0]
    N = positions.shape[0]
    dependence = np.empty(N, np.int64)
    counts = np.zeros(n)
    differences = np.zeros(n)
    for k in range(N):
        p = positions[k]
        r = flat[p]
        equal = 0
        count = 0
        total = 0.0
        for s in strides:
            for q in (flat[p + s], flat[p - s]):
                if q == r:
                    equal += 1
                if q > 0:
                    count += 1
                    total += levels[q - 1]
        dependence[k] = equal
        if count > 0:
            counts[r - 1] += 1.0
            differences[r - 1] += abs(levels[r - 1] - total / count)
    P = np.zeros((n, dependence.max() + 1))
    for k in range(N):
        P[flat[positions[k]] - 1, dependence[k]] += 1.0
    return P, counts, differences


@_jit
def ngtdm_features(counts, differences, levels):
    """Busyness, Coarseness, Complexity, Contrast, Strength from the NGTDM (pyradiomics' definitions)."""
    out = np.zeros(5)
    keep = counts > 0
    c, s, g = counts[keep], differences[keep], levels[keep]
    k = c.shape[0]
    if k == 0:
        out[1] = 1e6
        return out
    Nvp = c.sum()
    p = c / Nvp
    weighted = np.sum(p * s)
    sum_s = np.sum(s)
    contrast = absdiff = complexity = strength = 0.0
    for x in range(k):
        for y in range(k):
            d = g[x] - g[y]
            contrast += p[x] * p[y] * d * d
            absdiff += abs(abs(g[x] * p[x]) - abs(g[y] * p[y]))
            complexity += abs(d) * (p[x] * s[x] + p[y] * s[y]) / (p[x] + p[y])
            strength += (p[x] + p[y]) * d * d
    div = k * (k - 1)
    out[0] = weighted / absdiff if absdiff != 0 else 0.0
    out[1] = 1.0 / weighted if weighted != 0 else 1e6
    out[2] = complexity / Nvp
    out[3] = contrast * sum_s / Nvp / div if div != 0 else 0.0
    out[4] = strength / sum_s if sum_s != 0 else 0.0
    return out


@_jit
def _turn(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@_jit
def shape2d_kernel(mask, spacing, lengths, steps, crosses):
    """Marching-squares area and perimeter, hull area, maximum diameter and pixel moments of a 2D mask.

    ``lengths``, ``steps`` and ``crosses`` are per cell case (16): the summed segment length, the summed
    segment vector (end − start) and the summed cross product start × end of the case's oriented segments,
    in mm with the cell origin at 0 (see ``shape._square_constants``).  The contour vertices are the
    midpoints of the in/out pixel edges (doubled index units); only the first and last of each row can be
    hull vertices, and rows come in order, so the monotone chain needs no sort.  One pass over the pixels.

    Returns (signed area × 2, perimeter, hull area, maximum diameter, pixel count, cov_yy, cov_xx, cov_yx).
    """
    ny, nx = mask.shape
    dy, dx = spacing[0], spacing[1]
    perimeter = twice_area = 0.0
    count = 0
    sy = sx = syy = sxx = syx = 0.0
    rows = 2 * ny
    first = np.full(rows, 1 << 40, np.int64)
    last = np.full(rows, -1, np.int64)
    for y in range(ny):
        for x in range(nx):
            here = mask[y, x]
            if here:
                count += 1
                sy += y
                sx += x
                syy += y * y
                sxx += x * x
                syx += y * x
            if x + 1 < nx and here != mask[y, x + 1]:  # vertex (2x + 1, 2y)
                first[2 * y] = min(first[2 * y], 2 * x + 1)
                last[2 * y] = max(last[2 * y], 2 * x + 1)
            if y + 1 < ny:
                if here != mask[y + 1, x]:  # vertex (2x, 2y + 1)
                    first[2 * y + 1] = min(first[2 * y + 1], 2 * x)
                    last[2 * y + 1] = max(last[2 * y + 1], 2 * x)
                if x + 1 < nx:
                    case = here | (mask[y, x + 1] << 1) | (mask[y + 1, x + 1] << 2) | (mask[y + 1, x] << 3)
                    if case != 0 and case != 15:
                        perimeter += lengths[case]
                        twice_area += crosses[case] + x * dx * steps[case, 0] - y * dy * steps[case, 1]
    # hull candidates in (row, column) order
    px = np.empty(2 * rows, np.int64)
    py = np.empty(2 * rows, np.int64)
    m = 0
    for r in range(rows):
        if last[r] >= 0:
            px[m], py[m] = first[r], r
            m += 1
            if last[r] != first[r]:
                px[m], py[m] = last[r], r
                m += 1
    hx = np.empty(2 * m + 1, np.int64)
    hy = np.empty(2 * m + 1, np.int64)
    h = 0
    for k in range(m):  # lower hull
        while h >= 2 and _turn(hx[h - 2], hy[h - 2], hx[h - 1], hy[h - 1], px[k], py[k]) <= 0:
            h -= 1
        hx[h], hy[h] = px[k], py[k]
        h += 1
    lower = h + 1
    for k in range(m - 2, -1, -1):  # upper hull
        while h >= lower and _turn(hx[h - 2], hy[h - 2], hx[h - 1], hy[h - 1], px[k], py[k]) <= 0:
            h -= 1
        hx[h], hy[h] = px[k], py[k]
        h += 1
    h -= 1  # the last point repeats the first
    hull_area = 0.0
    for k in range(h):
        q = (k + 1) % h
        hull_area += hx[k] * hy[q] - hx[q] * hy[k]
    hull_area = abs(hull_area) * 0.125 * dx * dy  # doubled units: / 4, shoelace: / 2
    best = 0.0
    for k in range(h):
        for q in range(k + 1, h):
            ex = (hx[k] - hx[q]) * 0.5 * dx
            ey = (hy[k] - hy[q]) * 0.5 * dy
            best = max(best, ex * ex + ey * ey)
    my, mx = sy / count, sx / count
    out = np.empty(8)
    out[0] = twice_area
    out[1] = perimeter
    out[2] = hull_area if h >= 3 and hull_area > 0 else np.nan
    out[3] = math.sqrt(best)
    out[4] = count
    out[5] = (syy / count - my * my) * dy * dy
    out[6] = (sxx / count - mx * mx) * dx * dx
    out[7] = (syx / count - my * mx) * dy * dx
    return out
