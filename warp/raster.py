"""The depth map as a triangle mesh, rasterised into the target camera with a z-test, all frames at once.

Every 2×2 block of neighbouring source pixels (a quad, corners a b / c d) is split into two
triangles (a, b, d) and (a, d, c) along its a–d diagonal. Each source pixel is a
vertex, placed at its target position (u, v) by the reprojection. A target pixel centre inside a
triangle takes the triangle's colour, interpolated perspective-correctly from its three vertices;
where several triangles cover a pixel the nearest wins (largest inverse depth of the triangle's
centroid). A surface the move magnifies therefore stays whole — its triangles simply grow.

The mesh tears at occlusion edges: a triangle whose vertices' source depths differ by more than the
ratio TEAR_DEPTH_RATIO is dropped when the move opens it (its target bounding box is wider or
taller than TEAR_MIN_EXTENT px), so what opens between a near and a far surface stays a hole and no
colour is smeared across it. Triangles the move turns over (seen from behind) are dropped too.
Vertices on the border of the mesh (the image border, a torn edge, an isolated pixel) are also drawn
as their pixel's footprint, so a surface ends where its last pixel ends (``footprint_table``).

Coverage is watertight: a pixel centre is inside when all three edge functions are ≥ 0, and every
edge function is computed exactly (positions on the 1/SUBPIXEL grid; float32 within a small box,
float64 for listed candidates), so the two triangles sharing an edge see it with exactly opposite
signs and a centre on a shared edge belongs to both — never to neither. Target positions are
snapped to 1/SUBPIXEL px, so a vertex that lands on a pixel centre (every vertex of the identity
move) gives that pixel exactly the vertex's colour.

Quads whose bounding box holds at most SMALL_BOX × SMALL_BOX pixel centres (nearly all) are tested
at those centres directly, with edge functions updated from the box origin (``_draw_small``); the
centres of larger quads are listed and processed in slices of CANDIDATE_CHUNK to bound memory
(``_draw``). The z-test is a ``scatter_reduce_(amax)`` on a 64-bit key: the float bits of the inverse
depth above the triangle's number. The per-quad tests are float arithmetic whose sign carries the
answer (a triangle's inverse depth is < 0 when it is not drawn, a centre is inside when the minimum
of its edge functions and gates is ≥ 0), not boolean masks and selections, which cost several times
more on CPU.

On a GPU all frames go through each step at once. On CPU the same steps run on slices of the grid
(``_rows``: rows of one frame, under CPU_SLICE elements per tensor), the frames shared among
torch's threads (``_for_frames``), so that every op works on data in cache and stays below ATen's
parallel grain: it runs on the calling thread with no wait at a barrier for other threads, which on
shared cores costs more than the op (docs/geometry.md, "Implementation"). Ops that ATen runs in
parallel from far fewer elements (ceil, floor, round, repeat_interleave, advanced indexing) are not
used in the slices.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

# Target positions are snapped to 1/SUBPIXEL px: a vertex on a pixel centre up to float round-off
# lands exactly on it.
SUBPIXEL = 256.0
# Vertices farther than this from the image origin (px) are dropped: positions stay exact in float32.
MAX_COORD = 65536.0
# Occlusion edges: a triangle tears when the largest source depth of its vertices exceeds the
# smallest by this ratio and the move opens it (target bounding box wider or taller than
# TEAR_MIN_EXTENT px; an unmoved triangle spans 1 px). See docs/geometry.md for the measurement.
TEAR_DEPTH_RATIO = 1.1
TEAR_MIN_EXTENT = 1.5
# Candidates (quad, target pixel) processed per slice: bounds the working memory (~150 bytes each).
CANDIDATE_CHUNK = 1 << 23
NO_OWNER = -1
# Footprints of border vertices sit this much (relative inverse depth) behind their vertex, so the
# surface's own triangles win wherever they exist and the footprint only extends it.
FOOTPRINT_DEPTH_BIAS = 1e-3
# A footprint is not drawn when one source pixel step spans more than this many target pixels: a
# surface grazing the target camera's plane (its Jacobian explodes), not a surface to extend.
FOOTPRINT_MAX_STEP = 16.0
# Quads whose bounding box holds at most SMALL_BOX pixel centres each way (almost all of them: a
# quad the move does not magnify spans about one pixel) are tested at those few centres directly
# (``_draw_small``); larger ones through the list of their candidates (``_draw``).
SMALL_BOX = 2
# On CPU, elements per tensor of one slice: below ATen's parallel grain (32768), so each op runs on
# the calling thread on operands in cache (docs/geometry.md, "Implementation").
CPU_SLICE = 32767
# A float far above any position, edge function or inverse depth, and far below float32's maximum:
# inverse depth of invalid vertices (negated), and the gates that keep a value out of a minimum.
BIG = 2.0**100
# Edge functions of positions on the 1/SUBPIXEL grid are multiples of 1/SUBPIXEL² (or exactly -1,
# a gate): a minimum below zero is at most -EDGE_STEP / 2.
EDGE_STEP = 1.0 / SUBPIXEL**2
# The same for the listed candidates, whose corners (footprints: ± half a pixel step mapped) lie on a
# 1/(4·SUBPIXEL) grid: their float64 edge functions are multiples of this, or ±1 (a gate).
LISTED_STEP = 1.0 / (4 * SUBPIXEL) ** 2


def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def _snap(t: torch.Tensor) -> torch.Tensor:
    """t (float32, |t| < MAX_COORD) rounded to the nearest multiple of 1/SUBPIXEL, ties to even: with
    ``torch.round``, on CPU by adding and removing 1.5·2⁵² in float64 instead (the same bits), since
    ``round`` runs in parallel there from 2048 elements on."""
    if t.device.type != "cpu":
        return t.mul(SUBPIXEL).round_().div_(SUBPIXEL)
    magic = 1.5 * 2.0**52
    return t.double().mul_(SUBPIXEL).add_(magic).sub_(magic).div_(SUBPIXEL).float()


def _rows(rows: int, width: int, sliced: bool, per_row: int = 1):
    """(row0, row1) blocks covering ``rows`` rows of ``width`` elements (each ``per_row`` tensor elements):
    all at once unless ``sliced``, else at most CPU_SLICE tensor elements each (at least one row)."""
    step = max(1, CPU_SLICE // (width * per_row)) if sliced else rows
    for r in range(0, rows, step):
        yield r, min(r + step, rows)


def _for_frames(work, frames: int, sliced: bool) -> None:
    """work(f0, f1) for all frames: once for all unless ``sliced``, else for each frame, on up to
    ``torch.get_num_threads()`` threads (a slice's ops release the GIL; each frame writes its own
    part of every output). The threads run in the caller's inference and grad modes (thread-local in
    torch: ComfyUI runs nodes in inference mode, whose tensors only such threads may write)."""
    if not sliced:
        work(0, frames)
        return
    workers = min(torch.get_num_threads(), frames)
    if workers <= 1:
        for i in range(frames):
            work(i, i + 1)
        return
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def frame(i):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            work(i, i + 1)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(frame, range(frames)))


def _sliced(device: torch.device) -> bool:
    """Whether the steps run on slices (CPU) or on everything at once (GPU)."""
    return device.type == "cpu"


class Mesh:
    """Per-vertex arrays of all frames, flattened over the grid padded by one column and one row
    (pad = invalid) plus a tail of W + 2 invalid entries, so that the quad q has the corners
    a = q, b = q + 1, c = q + Wp, d = q + Wp + 1 (Wp = W + 1) and each corner array is a slice.

    x, y: target position (0 where invalid); inv_z: inverse depth in the target camera (0 where
    invalid); gated_inv: inv_z, and -BIG where invalid (a triangle with an invalid vertex has a
    negative centroid); depth: source depth (1 where invalid); valid: bool."""

    def __init__(self, u, v, inv_z, source_depth, valid):
        f, h, w = u.shape
        self.frames, self.height, self.width = f, h, w
        self.wp = w + 1
        self.per_frame = (h + 1) * self.wp
        self.count = f * self.per_frame  # quads: one per vertex of the padded grid
        self.sliced = _sliced(u.device)
        if 3 * self.count >= 2**31:
            raise ValueError(f"{f} frames of {w}x{h} are too many for one warp; warp fewer frames at a time.")
        size = self.count + self.wp + 2
        arrays = {"x": 0.0, "y": 0.0, "inv_z": 0.0, "gated_inv": -BIG, "depth": 1.0, "valid": False}
        for name, fill in arrays.items():
            t = torch.empty(size, dtype=torch.bool if name == "valid" else torch.float32, device=u.device)
            grid = t[:self.count].view(f, h + 1, w + 1)
            grid[:, :, w] = fill
            grid[:, h, :] = fill
            t[self.count:] = fill
            setattr(self, name, t)
        grids = {name: getattr(self, name)[:self.count].view(f, h + 1, w + 1)[:, :h, :w] for name in arrays}

        def fill(f0, f1):
            for r0, r1 in _rows(h, w, self.sliced):
                part = (slice(f0, f1), slice(r0, r1))
                bu, bv = u[part], v[part]
                inside = valid[part] & (bu.abs() < MAX_COORD) & (bv.abs() < MAX_COORD)
                grids["x"][part] = _snap(torch.where(inside, bu, 0.0))
                grids["y"][part] = _snap(torch.where(inside, bv, 0.0))
                gated = torch.where(inside, inv_z[part], -BIG)
                grids["gated_inv"][part] = gated
                grids["inv_z"][part] = gated.clamp_(min=0.0)
                grids["depth"][part] = torch.where(inside, source_depth[part], 1.0)
                grids["valid"][part] = inside

        _for_frames(fill, f, self.sliced)

    def quad_range(self, f0: int, f1: int, r0: int, r1: int) -> tuple[int, int]:
        """Quads [start, stop) of rows r0..r1 (of the H + 1 padded rows) of frames f0..f1 (one frame, or
        all rows)."""
        return f0 * self.per_frame + r0 * self.wp, (f1 - 1) * self.per_frame + r1 * self.wp

    def corners(self, t, start: int, stop: int):
        """The corner views a, b, c, d [stop - start] of a per-vertex array t for quads start..stop."""
        wp = self.wp
        return t[start:stop], t[start + 1:stop + 1], t[start + wp:stop + wp], t[start + wp + 1:stop + wp + 1]

    def quad_corners(self, t, start: int, stop: int):
        """The corners p0..p3 = a, b, d, c of a per-vertex array t, in cyclic order: the triangles are
        (p0, p1, p2) and (p0, p2, p3), both with positive area when the surface faces the camera, and
        p0–p2 is the diagonal."""
        a, b, c, d = self.corners(t, start, stop)
        return a, b, d, c


class Targets:
    """The z-test keys of every target pixel, int64 [F·(H + M)·(W + M)] (M = SMALL_BOX): each frame
    with M extra columns and rows, where ``_draw_small``'s centres beyond the image land, cut off by
    ``block``."""

    def __init__(self, frames: int, height: int, width: int, device):
        self.frames, self.height, self.width, self.margin = frames, height, width, SMALL_BOX
        self.row = width + self.margin
        self.per_frame = (height + self.margin) * self.row
        self.keys = torch.full((frames * self.per_frame,), NO_OWNER, dtype=torch.int64, device=device)

    def frame_base(self, mesh: Mesh, start: int, stop: int, index=None):
        """Index of each quad's (or vertex's) frame origin in ``keys``: an int when quads start..stop lie in
        one frame, else int64 [n] for ``index`` (default start..stop)."""
        first, last = start // mesh.per_frame, (stop - 1) // mesh.per_frame
        if first == last:
            return first * self.per_frame
        if index is None:
            index = torch.arange(start, stop, device=self.keys.device)
        return index.div(mesh.per_frame, rounding_mode="floor").mul_(self.per_frame)

    def block(self, f0: int, f1: int, r0: int, r1: int) -> torch.Tensor:
        """The keys of target rows r0..r1 of frames f0..f1 [f1 - f0, r1 - r0, W]."""
        grid = self.keys.view(self.frames, self.height + self.margin, self.row)
        return grid[f0:f1, r0:r1, :self.width]


def _keys(inv_z: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """z-test keys int64: the float32 bits of the inverse depth (> 0, so ordered like it) above the owner."""
    return (inv_z.view(torch.int32).long() << 32) | owner


def _gate(inv: torch.Tensor) -> torch.Tensor:
    """0 where inv > 0 (drawn), BIG where inv < 0: added to a lower box bound (subtracted from an upper
    one) it empties the box of what is not drawn."""
    return torch.sign(inv).mul_(-0.5 * BIG).add_(0.5 * BIG)


def _box(lo_x, lo_y, hi_x, hi_y, mesh: Mesh):
    """The pixel centres in a bounding box, clipped to the image: origin (x_lo, y_lo) and size (nx, ny),
    float32 [n] holding integers; nx·ny = 0 when it holds none. (Rounded with ``frac`` after clipping,
    exact here: ceil and floor run in parallel on CPU from 2048 elements on.)"""
    lows = []
    for lo, end in ((lo_x, mesh.width), (lo_y, mesh.height)):
        lo = lo.clamp(0, end)
        lows.append(lo.add_(torch.sub(end, lo).frac_()))  # ceil(lo) = lo + frac(end - lo)
    sizes = []
    for hi, lo, end in ((hi_x, lows[0], mesh.width), (hi_y, lows[1], mesh.height)):
        hi = hi.clamp(-1.0, end - 1)
        hi -= torch.add(hi, 1.0).frac_()  # floor(hi) = hi - frac(hi + 1)
        sizes.append(hi.sub_(lo).add_(1).clamp_(min=0))
    return lows[0], lows[1], sizes[0], sizes[1]


def quad_table(mesh: Mesh, start: int, stop: int):
    """Drawing table of quads start..stop: corner positions relative to the box origin (xs, ys: four
    [n] each, corners p0..p3), each triangle's inverse depth for the z-test (inv0 for (p0, p1, p2),
    inv1 for (p0, p2, p3): that of its centroid, < 0 when it is not drawn) and the box of the pixel
    centres of the drawn triangles (see ``_box``). A triangle is drawn when its three vertices are
    valid, it faces the camera and it is not torn."""
    x = mesh.quad_corners(mesh.x, start, stop)
    y = mesh.quad_corners(mesh.y, start, stop)
    inv_z, z = mesh.quad_corners(mesh.gated_inv, start, stop), mesh.quad_corners(mesh.depth, start, stop)
    # The diagonal p0–p2 is shared by both triangles.
    lo_x, hi_x = torch.minimum(x[0], x[2]), torch.maximum(x[0], x[2])
    lo_y, hi_y = torch.minimum(y[0], y[2]), torch.maximum(y[0], y[2])
    z_lo, z_hi = torch.minimum(z[0], z[2]), torch.maximum(z[0], z[2])
    ex, ey = x[2] - x[0], y[2] - y[0]
    diagonal_inv = inv_z[0] + inv_z[2]
    boxes, inv = [], []
    for j, sign in ((1, -1.0), (3, 1.0)):  # the third vertex, the side of the diagonal it must lie on
        box = (torch.minimum(lo_x, x[j]), torch.minimum(lo_y, y[j]), torch.maximum(hi_x, x[j]), torch.maximum(hi_y, y[j]))
        # Torn: opened (extent > TEAR_MIN_EXTENT) and the depths differ by more than the ratio: the
        # smaller of the two excesses is > 0. Not torn gives BIG, torn a negative value.
        extent = torch.maximum(box[2] - box[0], box[3] - box[1]).sub_(TEAR_MIN_EXTENT)
        far = torch.maximum(z_hi, z[j]).sub_(TEAR_DEPTH_RATIO * torch.minimum(z_lo, z[j]))
        torn = torch.threshold(torch.minimum(extent, far), 0.0, -1.0).mul_(-BIG)
        # Facing the camera: sign · cross > 0; a nonzero cross is at least EDGE_STEP, so scaled by BIG it
        # exceeds any inverse depth, and less 1 it is negative when the triangle faces away.
        faces = _cross(ex, ey, x[j] - x[0], y[j] - y[0]).mul_(sign * BIG).sub_(1.0)
        centroid = (diagonal_inv + inv_z[j]).div_(3)  # negative when a vertex is invalid
        inv.append(torch.minimum(torch.minimum(centroid, faces, out=centroid), torn, out=centroid))
        boxes.append(box)
    g0, g1 = _gate(inv[0]), _gate(inv[1])
    union = (torch.minimum(boxes[0][0] + g0, boxes[1][0] + g1), torch.minimum(boxes[0][1] + g0, boxes[1][1] + g1),
             torch.maximum(boxes[0][2] - g0, boxes[1][2] - g1), torch.maximum(boxes[0][3] - g0, boxes[1][3] - g1))
    box = _box(*union, mesh)
    xs = [t - box[0] for t in x]
    ys = [t - box[1] for t in y]
    return xs, ys, inv[0], inv[1], box


def _same_surface(mesh: Mesh, vertex, neighbour):
    """Whether ``neighbour`` (indices, may be < 0) is a valid vertex on the same surface as ``vertex``
    (source depths within TEAR_DEPTH_RATIO)."""
    nb = neighbour.clamp(min=0)
    za, zb = mesh.depth.index_select(0, vertex), mesh.depth.index_select(0, nb)
    return ((neighbour >= 0) & mesh.valid.index_select(0, nb)
            & (torch.maximum(za, zb) <= TEAR_DEPTH_RATIO * torch.minimum(za, zb)))


def _axis(mesh: Mesh, vertex, step: int, default: tuple[float, float]):
    """Target image (x, y) of one source pixel step (step = 1: a column, W + 1: a row) at ``vertex``:
    the central difference over its same-surface neighbours, one-sided at a tear, ``default`` when
    it has none."""
    after, before = vertex + step, vertex - step
    s_after, s_before = _same_surface(mesh, vertex, after), _same_surface(mesh, vertex, before)
    out = []
    for t, d in ((mesh.x, default[0]), (mesh.y, default[1])):
        here, a, b = t.index_select(0, vertex), t.index_select(0, after), t.index_select(0, before.clamp(min=0))
        out.append(torch.where(s_after & s_before, (a - b) / 2,
                               torch.where(s_after, a - here, torch.where(s_before, here - b, d))))
    return out


def border_vertices(mesh: Mesh, quad_inv: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The border vertices among vertices start..stop, int64 [n]: valid vertices with a quad around
    them that is not fully drawn (at the image border, at a tear, an isolated pixel). quad_inv holds
    min(inv0, inv1) of every quad, shifted by Wp + 1 (negative for quads not drawn and those before
    the first); its quads up to ``stop`` must be known."""
    wp = mesh.wp
    around = torch.minimum(torch.minimum(quad_inv[start:stop], quad_inv[start + 1:stop + 1]),
                           torch.minimum(quad_inv[start + wp:stop + wp], quad_inv[start + wp + 1:stop + wp + 1]))
    return ((around < 0) & mesh.valid[start:stop]).nonzero().squeeze(1).add_(start)


def footprint_table(mesh: Mesh, vertex: torch.Tensor):
    """Drawing table (see ``quad_table``, both triangles the same square) of the footprints of the
    vertices ``vertex`` (int64 [n], from ``border_vertices``). A footprint is the vertex's pixel square
    (±½ pixel step), mapped by the local Jacobian of its own surface, at the vertex's inverse depth
    less FOOTPRINT_DEPTH_BIAS so that where the surface's triangles exist they win. Footprints
    magnified beyond FOOTPRINT_MAX_STEP are not drawn."""
    wp = mesh.wp
    ux, uy = _axis(mesh, vertex, 1, (1.0, 0.0))
    vx, vy = _axis(mesh, vertex, wp, (0.0, 1.0))
    cx, cy = mesh.x.index_select(0, vertex), mesh.y.index_select(0, vertex)
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))  # a, b, d, c: the cyclic order of a quad
    xs = [cx + 0.5 * (su * ux + sv * vx) for su, sv in signs]
    ys = [cy + 0.5 * (su * uy + sv * vy) for su, sv in signs]
    step = torch.maximum(torch.maximum(ux.abs(), uy.abs()), torch.maximum(vx.abs(), vy.abs()))
    inv = torch.where(step <= FOOTPRINT_MAX_STEP, mesh.inv_z.index_select(0, vertex) * (1.0 - FOOTPRINT_DEPTH_BIAS), -1.0)
    gate = _gate(inv)
    box = _box(torch.minimum(torch.minimum(xs[0], xs[1]), torch.minimum(xs[2], xs[3])).add_(gate),
               torch.minimum(torch.minimum(ys[0], ys[1]), torch.minimum(ys[2], ys[3])).add_(gate),
               torch.maximum(torch.maximum(xs[0], xs[1]), torch.maximum(xs[2], xs[3])).sub_(gate),
               torch.maximum(torch.maximum(ys[0], ys[1]), torch.maximum(ys[2], ys[3])).sub_(gate), mesh)
    return [t - box[0] for t in xs], [t - box[1] for t in ys], inv, inv, box


def _owners(starts: torch.Tensor, total, first: int) -> torch.Tensor:
    """For each of ``total`` consecutive candidates, the row it belongs to (``first`` + its position in
    ``starts`` [n], the rows' first candidates, nondecreasing from 0; rows may be empty): a cumulative
    count of the rows started so far (``repeat_interleave`` runs in parallel on CPU for any size)."""
    total = int(total)
    marks = torch.zeros(total + 1, dtype=torch.int64, device=starts.device)
    marks.scatter_add_(0, starts[1:] - starts[0], torch.ones_like(starts[1:]))
    return marks[:total].cumsum_(0).add_(first)


def _draw(xs, ys, inv0, inv1, box, rows, base, owners, targets: Targets) -> None:
    """z-test every target pixel centre inside a drawn triangle of the table rows ``rows`` (int64 [n])
    of a drawing table (xs, ys, inv0, inv1, box: see ``quad_table``) into ``targets``; base [table] is
    each row's frame origin in the keys (or an int for all), owners the owners to record for the two
    triangles of each listed row (int64 [n] each). Edge functions are evaluated in float64, where the
    products of positions on the 1/SUBPIXEL grid are exact, so every triangle sharing an edge sees it
    with exactly opposite signs. A centre is inside a triangle when the minimum of its edge functions
    and of the sign of its inverse depth is ≥ 0 (the second triangle only where not in the first)."""
    if rows.numel() == 0:
        return
    device = rows.device
    keys, row_len = targets.keys, targets.row
    x_lo, y_lo, nx, ny = (t.index_select(0, rows) for t in box)
    counts = (nx * ny).long()
    origin = torch.add(x_lo, y_lo, alpha=row_len).long()  # target of (x_lo, y_lo) in its frame
    origin += base if isinstance(base, int) else base.index_select(0, rows)
    position = [t.index_select(0, rows) for t in (*xs, *ys)]
    row_inv = inv0.index_select(0, rows), inv1.index_select(0, rows)
    row_keys = [_keys(inv, owner) for inv, owner in zip(row_inv, owners)]
    gates = [inv.sign().double() for inv in row_inv]  # 1 where drawn, -1 where not
    ends = counts.cumsum(0)
    starts = ends - counts
    total = int(ends[-1])
    chunk = min(CANDIDATE_CHUNK, CPU_SLICE) if _sliced(device) else CANDIDATE_CHUNK
    cuts = torch.searchsorted(ends, torch.arange(chunk, max(total, chunk), chunk, device=device)).tolist()
    for first, last in zip([0] + cuts, cuts + [counts.shape[0]]):
        item = _owners(starts[first:last], ends[last - 1] - starts[first], first)
        local = torch.arange(item.shape[0], device=device).sub_(starts.index_select(0, item)).add_(starts[first]).float()
        width = nx.index_select(0, item)
        dy = local / width
        dy -= dy.frac()  # floor: exact for integers below 2^23
        dx = local.sub_(dy * width)
        rx = [(t.index_select(0, item) - dx).double() for t in position[0:4]]
        ry = [(t.index_select(0, item) - dy).double() for t in position[4:8]]
        diagonal = _cross(rx[2], ry[2], rx[0], ry[0])  # edge p2→p0 of the first triangle
        inside = torch.minimum(torch.minimum(_cross(rx[0], ry[0], rx[1], ry[1]), _cross(rx[1], ry[1], rx[2], ry[2])),
                               torch.minimum(diagonal, gates[0].index_select(0, item)))
        second = torch.minimum(torch.minimum(_cross(rx[2], ry[2], rx[3], ry[3]), _cross(rx[3], ry[3], rx[0], ry[0])),
                               torch.minimum(diagonal.neg_(), gates[1].index_select(0, item)))
        second = torch.minimum(second, inside.neg().sub_(LISTED_STEP / 2))  # only where not in the first
        # 0 where inside, -1 (all bits) where not: or-ed into a key it gives the key or NO_OWNER.
        miss0 = inside.clamp_(-LISTED_STEP / 2, 0.0).mul_(2 / LISTED_STEP).long()
        miss1 = second.clamp_(-LISTED_STEP / 2, 0.0).mul_(2 / LISTED_STEP).long()
        key = (row_keys[0].index_select(0, item) | miss0).bitwise_and_(row_keys[1].index_select(0, item) | miss1)
        target = origin.index_select(0, item).add_(torch.add(dx, dy, alpha=row_len).long())
        keys.scatter_reduce_(0, target, key, "amax")


def _draw_small(xs, ys, inv0, inv1, box, rows, base, owner, targets: Targets) -> None:
    """``_draw`` for the quads of a drawing table whose box holds at most SMALL_BOX × SMALL_BOX pixel
    centres, without listing candidates: each edge function is affine in the pixel centre,
    E(dx, dy) = E(0, 0) − dx·Δy + dy·Δx from the box origin, and is evaluated at the few centres of
    the box. Positions within a few pixels of the origin on the 1/SUBPIXEL grid make every term exact
    in float32, so the values equal ``_draw``'s. A centre is inside the first triangle when the minimum
    of its edge functions and of two gates (-1 when the triangle is not drawn or its quad's box is not
    small; -1 beyond the box) is ≥ 0, inside the second likewise when it is not inside the first.
    rows (int64 [n]) picks the quads to draw (None: all), owner (int64 [n]) is the owner of each
    one's first triangle (the second's is one more), base as in ``_draw``."""
    if rows is not None:
        xs, ys, inv0, inv1 = ([t.index_select(0, rows) for t in c] for c in (xs, ys, [inv0], [inv1]))
        inv0, inv1, box = inv0[0], inv1[0], [t.index_select(0, rows) for t in box]
        base = base if isinstance(base, int) else base.index_select(0, rows)
    n = inv0.shape[0]
    if n == 0 or SMALL_BOX == 0:
        return
    keys, row_len = targets.keys, targets.row
    x_lo, y_lo, nx, ny = box
    # > 0 where the box is small and holds a centre (so the box origin is a centre of it).
    small = torch.minimum(torch.maximum(nx, ny).neg_().add_(SMALL_BOX + 0.5), nx * ny - 0.5)
    gate0 = torch.minimum(inv0, small).sign_()  # 1: drawn here, -1: not
    gate1 = torch.minimum(inv1, small).sign_()
    key0 = _keys(inv0, owner)
    key1 = _keys(inv1, owner + 1)
    origin = torch.add(x_lo, y_lo, alpha=row_len).long()
    origin += base
    X, Y = xs, ys
    # Edge functions at the box origin, and their steps per pixel in x and y: sides p0p1, p1p2, p2p3,
    # p3p0 and the diagonal p2p0.
    edges = [(_cross(X[i], Y[i], X[j], Y[j]), Y[i] - Y[j], X[j] - X[i])
             for i, j in ((0, 1), (1, 2), (2, 3), (3, 0), (2, 0))]
    columns = [nx - (dx + 0.5) for dx in range(SMALL_BOX)]  # > 0: column dx is in the box
    rows = [ny - (dy + 0.5) for dy in range(SMALL_BOX)]
    at_column = [[c if dx == 0 else torch.add(c, a, alpha=dx) for c, a, _ in edges] for dx in range(SMALL_BOX)]
    half = 0.5 * EDGE_STEP
    for dy in range(SMALL_BOX):
        for dx in range(SMALL_BOX):
            e01, e12, e23, e30, e20 = (e if dy == 0 else torch.add(e, b, alpha=dy)
                                       for e, (_, _, b) in zip(at_column[dx], edges))
            # Gates, and whether this centre is in the box (the origin is, where the gates are 1).
            in_box = (None if dx == 0 and dy == 0 else rows[dy] if dx == 0 else columns[dx] if dy == 0
                      else torch.minimum(columns[dx], rows[dy]))
            g0 = gate0 if in_box is None else torch.minimum(gate0, in_box)
            g1 = gate1 if in_box is None else torch.minimum(gate1, in_box)
            first = torch.minimum(torch.minimum(e01, e12), torch.minimum(e20, g0))
            second = torch.minimum(torch.minimum(e23, e30), torch.minimum(e20.neg(), g1))
            second = torch.minimum(second, torch.rsub(first, -half))  # only where not in the first
            # 0 where inside, -1 (all bits) where not: or-ed into a key it gives the key or NO_OWNER.
            miss0 = first.clamp_(-half, 0.0).mul_(1.0 / half).long()
            miss1 = second.clamp_(-half, 0.0).mul_(1.0 / half).long()
            key = (key0 | miss0).bitwise_and_(key1 | miss1)
            keys.scatter_reduce_(0, origin + (dy * row_len + dx), key, "amax")


def rasterize(u: torch.Tensor, v: torch.Tensor, inv_z: torch.Tensor, source_depth: torch.Tensor,
              valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which source pixels make each target pixel, and with which weights.

    u, v [F, H, W] float32: target column and row of every source pixel (any value where not
    valid); inv_z [F, H, W] float32: 1/z in the target camera (> 0 and below 10²⁰ where valid);
    source_depth [F, H, W]: the depth the pixel was lifted with (> 0 where valid); valid [F, H, W] bool.
    Returns sources, three [F, H, W] int32 (rows of ``padded_pixels``), weights, three [F, H, W]
    float32 (perspective-correct, sum 1; 0 in holes), and seen [F, H, W] bool.
    """
    f, h, w = u.shape
    mesh = Mesh(u.float(), v.float(), inv_z.float(), source_depth.float(), valid)
    targets = Targets(f, h, w, u.device)
    vertex_owner = 2 * mesh.count  # owners at or above this are vertices (their footprints)
    # min(inv0, inv1) of every quad, shifted by Wp + 1 so that a vertex's four quads are slices (-1
    # before the first quad, and until a quad is drawn: footprints read the padding row of the frame before).
    quad_inv = torch.full((mesh.count + mesh.wp + 1,), -1.0, device=u.device)

    def draw(f0, f1):
        border = []  # border vertices of the slices drawn so far, whose footprints are not yet drawn
        for r0, r1 in _rows(h + 1, mesh.wp, mesh.sliced):
            start, stop = mesh.quad_range(f0, f1, r0, r1)
            xs, ys, inv0, inv1, box = quad_table(mesh, start, stop)
            base = targets.frame_base(mesh, start, stop)
            nx, ny = box[2], box[3]
            size, count = torch.maximum(nx, ny), nx * ny - 0.5  # count > 0: the box holds a centre
            if mesh.sliced:  # only the small boxes that hold a centre (on a GPU the selection costs more)
                rows = (torch.minimum(size.neg().add_(SMALL_BOX + 0.5), count) > 0).nonzero().squeeze(1)
                owner = rows.add(start).mul_(2)
            else:
                rows, owner = None, torch.arange(2 * start, 2 * stop, 2, device=u.device)
            _draw_small(xs, ys, inv0, inv1, box, rows, base, owner, targets)
            rows = (torch.minimum(size.sub_(SMALL_BOX + 0.5), count) > 0).nonzero().squeeze(1)  # listed
            owner = rows.add(start).mul_(2)
            _draw(xs, ys, inv0, inv1, box, rows, base, (owner, owner + 1), targets)
            torch.minimum(inv0, inv1, out=quad_inv[start + mesh.wp + 1:stop + mesh.wp + 1])
            border.append(border_vertices(mesh, quad_inv, start, stop))
            if sum(t.shape[0] for t in border) > CPU_SLICE // 2 or r1 == h + 1:
                footprints(torch.cat(border) if len(border) > 1 else border[0], start, stop)
                border.clear()

    def footprints(vertex, start, stop):
        """Draw the footprints of border vertices (of quads up to ``stop``, in one frame unless not
        sliced), in pieces of at most CPU_SLICE // 2 on CPU."""
        step = CPU_SLICE // 2 if mesh.sliced else max(vertex.shape[0], 1)
        for first in range(0, vertex.shape[0], step):
            part = vertex[first:first + step]
            fxs, fys, finv, _, fbox = footprint_table(mesh, part)
            owner = part + vertex_owner
            _draw(fxs, fys, finv, finv, fbox, torch.arange(part.shape[0], device=u.device),
                  targets.frame_base(mesh, start, stop, part), (owner, owner), targets)

    _for_frames(draw, f, mesh.sliced)
    return _interpolation(mesh, targets, vertex_owner)


def _interpolation(mesh: Mesh, targets: Targets, vertex_owner: int):
    """Sources, weights and seen (see ``rasterize``) from the winning keys. A footprint's pixel takes
    its vertex's colour, a hole the padding vertex's (zero, weight 0)."""
    f, h, w = mesh.frames, mesh.height, mesh.width
    device = targets.keys.device
    sources = [torch.empty(f, h, w, dtype=torch.int32, device=device) for _ in range(3)]
    weights = [torch.empty(f, h, w, device=device) for _ in range(3)]
    seen = torch.empty(f, h, w, dtype=torch.bool, device=device)
    px = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    wp = mesh.wp
    tiny = torch.finfo(torch.float32).tiny

    def interpolation(f0, f1):
        for r0, r1 in _rows(h, w, mesh.sliced):
            keys = targets.block(f0, f1, r0, r1)
            part = (slice(f0, f1), slice(r0, r1))
            # The owner (low 32 bits); a hole (NO_OWNER: -1) becomes the footprint of padding vertex Wp - 1.
            owner = keys.int()
            seen[part] = owner >= 0
            owner += (owner >> 31) & (vertex_owner + wp)
            vertex = owner - vertex_owner  # ≥ 0: a footprint or a hole, all three corners that vertex
            tri = vertex >> 31  # all bits set for a triangle, 0 for a point
            p0 = (vertex & ~tri) | ((owner >> 1) & tri)
            second = owner & 1
            corners = (p0, torch.add(p0, (second * wp).add_(1).bitwise_and_(tri)),  # (a, b, d) or (a, d, c)
                       torch.add(p0, second.neg_().add_(wp + 1).bitwise_and_(tri)))
            py = torch.arange(r0, r1, device=device, dtype=torch.float32).view(1, r1 - r0, 1)
            flat = [k.view(-1) for k in corners]
            rx = [mesh.x.index_select(0, k).view(keys.shape).sub_(px) for k in flat]
            ry = [mesh.y.index_select(0, k).view(keys.shape).sub_(py) for k in flat]
            point = (tri + 1).float()  # 1 for a point: its edge opposite corner 0 counts 1 (the crosses are 0)
            edge = (_cross(rx[1], ry[1], rx[2], ry[2]).add_(point), _cross(rx[2], ry[2], rx[0], ry[0]),
                    _cross(rx[0], ry[0], rx[1], ry[1]))  # opposite each corner
            wk = [e.mul_(mesh.inv_z.index_select(0, k).view(keys.shape)) for e, k in zip(edge, flat)]
            total = (wk[0] + wk[1]).add_(wk[2]).clamp_min_(tiny)  # 0 in holes
            for k in range(3):
                sources[k][part] = corners[k]
                torch.div(wk[k], total, out=weights[k][part])

    _for_frames(interpolation, f, mesh.sliced)
    return tuple(sources), tuple(weights), seen


def interpolate(pixels: torch.Tensor, sources, weights) -> torch.Tensor:
    """Σ_k pixels[sources_k]·weights_k [F, H, W, C]: pixels [N, C] from ``padded_pixels``, sources and
    weights from ``rasterize``."""
    f, h, w = weights[0].shape
    c = pixels.shape[-1]
    out = torch.empty(f, h, w, c, device=pixels.device, dtype=pixels.dtype)
    sliced = _sliced(pixels.device)

    def mix(f0, f1):
        for r0, r1 in _rows(h, w, sliced, per_row=c):
            part = (slice(f0, f1), slice(r0, r1))
            acc = out[part]  # contiguous: whole rows
            torch.index_select(pixels, 0, sources[0][part].reshape(-1), out=acc.view(-1, c))
            acc.mul_(weights[0][part].unsqueeze(-1))
            for k in (1, 2):
                acc.addcmul_(pixels.index_select(0, sources[k][part].reshape(-1)).view(acc.shape),
                             weights[k][part].unsqueeze(-1))

    _for_frames(mix, f, sliced)
    return out


def padded_pixels(values: torch.Tensor) -> torch.Tensor:
    """values [F, H, W, C] as the flat per-vertex array [F·(H+1)·(W+1), C] that ``rasterize``'s
    source indices point into (one zero column and row of padding per frame)."""
    c = values.shape[-1]
    return F.pad(values, (0, 0, 0, 1, 0, 1)).reshape(-1, c)
