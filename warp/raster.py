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

All frames are drawn at once. Quads whose bounding box holds at most SMALL_BOX × SMALL_BOX pixel
centres (nearly all) are tested at those centres directly, with edge functions updated from the
box origin (``_draw_small``); the centres of larger quads are listed (one host synchronisation for
their count) and processed in slices of CANDIDATE_CHUNK to bound memory (``_draw``). The z-test is a
``scatter_reduce_(amax)`` on a 64-bit key: the float bits of the inverse depth above the triangle's
number.
"""

from __future__ import annotations

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


def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def _min3(a, b, c):
    return torch.minimum(torch.minimum(a, b), c)


def _max3(a, b, c):
    return torch.maximum(torch.maximum(a, b), c)


class Mesh:
    """Per-vertex arrays of all frames, flattened over the grid padded by one column and one row
    (pad = invalid) plus a tail of W + 2 invalid entries, so that the quad q has the corners
    a = q, b = q + 1, c = q + Wp, d = q + Wp + 1 (Wp = W + 1) and each corner array is a slice."""

    def __init__(self, u, v, inv_z, source_depth, valid):
        f, h, w = u.shape
        self.frames, self.height, self.width = f, h, w
        self.wp = w + 1
        self.per_frame = (h + 1) * self.wp
        self.count = f * self.per_frame  # quads: one per vertex of the padded grid
        if 3 * self.count >= 2**32:
            raise ValueError(f"{f} frames of {w}x{h} are too many for one warp; warp fewer frames at a time.")
        inside = valid & (u.abs() < MAX_COORD) & (v.abs() < MAX_COORD)
        tail = self.wp + 2

        def flat(t, fill):
            return F.pad(F.pad(t, (0, 1, 0, 1), value=fill).reshape(-1), (0, tail), value=fill)

        self.x = flat(torch.where(inside, u, 0.0).mul_(SUBPIXEL).round_().div_(SUBPIXEL), 0.0)
        self.y = flat(torch.where(inside, v, 0.0).mul_(SUBPIXEL).round_().div_(SUBPIXEL), 0.0)
        self.inv_z = flat(torch.where(inside, inv_z, 0.0), 0.0)
        self.depth = flat(torch.where(inside, source_depth, 1.0), 1.0)
        self.valid = flat(inside, False)

    def corners(self, t):
        """The corner views a, b, c, d [count] of a per-vertex array t."""
        n, wp = self.count, self.wp
        return t[:n], t[1:n + 1], t[wp:n + wp], t[wp + 1:n + wp + 1]

    def quad_corners(self, t):
        """The corners p0..p3 = a, b, d, c [count] of a per-vertex array t, in cyclic order: the
        triangles are (p0, p1, p2) and (p0, p2, p3), both with positive area when the surface faces the
        camera, and p0–p2 is the diagonal."""
        a, b, c, d = self.corners(t)
        return a, b, d, c


# Columns of a drawing table: corner positions relative to the quad's bounding-box origin, then the
# inverse depth of each triangle's centroid (-1 = not drawn).
X0, Y0, INV = 0, 4, 8
# Quads whose bounding box holds at most SMALL_BOX pixel centres each way (almost all of them: a
# quad the move does not magnify spans about one pixel) are tested at those few centres directly
# (``_draw_small``); larger ones through the list of their candidates (``_draw``).
SMALL_BOX = 2


def _rows(xs, ys, inv0, inv1, mesh: Mesh, box=None):
    """Columns of a drawing table (10 tensors [n], see X0, Y0, INV) and the pixel-centre bounding box
    clipped to the image — origin (x_lo, y_lo) and size (nx, ny), int64 [n]; nx·ny = 0 when nothing is
    drawn — from the four corners xs, ys (lists of [n]) of quads whose triangles (p0, p1, p2),
    (p0, p2, p3) have inverse depths inv0, inv1 (≤ 0 = not drawn). ``box`` (lo_x, lo_y, hi_x, hi_y)
    defaults to the corners' bounding box."""
    drawn = (inv0 > 0) | (inv1 > 0)
    if box is None:
        box = (torch.minimum(_min3(*xs[:3]), xs[3]), torch.minimum(_min3(*ys[:3]), ys[3]),
               torch.maximum(_max3(*xs[:3]), xs[3]), torch.maximum(_max3(*ys[:3]), ys[3]))
    lo_x, lo_y, hi_x, hi_y = box
    lo_x = torch.where(drawn, lo_x, 0.0).ceil_().clamp_(0, mesh.width)
    lo_y = torch.where(drawn, lo_y, 0.0).ceil_().clamp_(0, mesh.height)
    nx = (torch.where(drawn, hi_x, -1.0).floor_().clamp_(max=mesh.width - 1) - lo_x + 1).clamp_(min=0)
    ny = (torch.where(drawn, hi_y, -1.0).floor_().clamp_(max=mesh.height - 1) - lo_y + 1).clamp_(min=0)
    cols = [t - lo_x for t in xs] + [t - lo_y for t in ys] + [inv0, inv1]
    return cols, (lo_x.long(), lo_y.long(), nx.long(), ny.long())


def quad_table(mesh: Mesh):
    """The mesh's drawing table and boxes (see ``_rows``), one row per quad [count]: a triangle is
    drawn when its three vertices are valid, it faces the camera and it is not torn; its inverse
    depth for the z-test is that of its centroid."""
    x, y = mesh.quad_corners(mesh.x), mesh.quad_corners(mesh.y)
    inv_z, z, valid = mesh.quad_corners(mesh.inv_z), mesh.quad_corners(mesh.depth), mesh.quad_corners(mesh.valid)
    # The diagonal p0–p2 is shared by both triangles.
    lo_x, hi_x = torch.minimum(x[0], x[2]), torch.maximum(x[0], x[2])
    lo_y, hi_y = torch.minimum(y[0], y[2]), torch.maximum(y[0], y[2])
    z_lo, z_hi = torch.minimum(z[0], z[2]), torch.maximum(z[0], z[2])
    ex, ey = x[2] - x[0], y[2] - y[0]
    diagonal_valid, diagonal_inv = valid[0] & valid[2], inv_z[0] + inv_z[2]
    boxes, inv = [], []
    for j, sign in ((1, -1.0), (3, 1.0)):  # the third vertex, the side of the diagonal it must lie on
        box = (torch.minimum(lo_x, x[j]), torch.minimum(lo_y, y[j]), torch.maximum(hi_x, x[j]), torch.maximum(hi_y, y[j]))
        opened = torch.maximum(box[2] - box[0], box[3] - box[1]) > TEAR_MIN_EXTENT
        torn = opened & (torch.maximum(z_hi, z[j]) > TEAR_DEPTH_RATIO * torch.minimum(z_lo, z[j]))
        faces = sign * _cross(ex, ey, x[j] - x[0], y[j] - y[0]) > 0
        drawn = diagonal_valid & valid[j] & faces & ~torn
        boxes.append(box)
        inv.append(torch.where(drawn, (diagonal_inv + inv_z[j]) / 3, -1.0))
    first, second = inv[0] > 0, inv[1] > 0
    union = tuple(op(torch.where(first, b0, b1), torch.where(second, b1, b0))
                  for op, b0, b1 in zip((torch.minimum, torch.minimum, torch.maximum, torch.maximum), *boxes))
    return _rows(list(x), list(y), inv[0], inv[1], mesh, union)


def _same_surface(mesh: Mesh, vertex, neighbour):
    """Whether ``neighbour`` (indices, may be < 0) is a valid vertex on the same surface as ``vertex``
    (source depths within TEAR_DEPTH_RATIO)."""
    nb = neighbour.clamp(min=0)
    za, zb = mesh.depth[vertex], mesh.depth[nb]
    return (neighbour >= 0) & mesh.valid[nb] & (torch.maximum(za, zb) <= TEAR_DEPTH_RATIO * torch.minimum(za, zb))


def _axis(mesh: Mesh, vertex, step: int, default: tuple[float, float]):
    """Target image (x, y) of one source pixel step (step = 1: a column, W + 1: a row) at ``vertex``:
    the central difference over its same-surface neighbours, one-sided at a tear, ``default`` when
    it has none."""
    after, before = vertex + step, vertex - step
    s_after, s_before = _same_surface(mesh, vertex, after), _same_surface(mesh, vertex, before)
    out = []
    for t, d in ((mesh.x, default[0]), (mesh.y, default[1])):
        here, a, b = t[vertex], t[after], t[before.clamp(min=0)]
        out.append(torch.where(s_after & s_before, (a - b) / 2,
                               torch.where(s_after, a - here, torch.where(s_before, here - b, d))))
    return out


def footprint_table(mesh: Mesh, cols):
    """Drawing table and boxes (see ``_rows``) of the footprints of the mesh's border vertices (a
    vertex with a quad around it that is not fully drawn: at the image border, at a tear, an isolated
    pixel), and those vertices [n]. A footprint is the vertex's pixel square (±½ pixel step), mapped
    by the local Jacobian of its own surface, at the vertex's inverse depth less FOOTPRINT_DEPTH_BIAS
    so that where the surface's triangles exist they win. Footprints magnified beyond
    FOOTPRINT_MAX_STEP are not drawn."""
    n, wp = mesh.count, mesh.wp
    open_quad = F.pad((cols[INV] <= 0) | (cols[INV + 1] <= 0), (wp + 1, 0), value=True)
    border = (open_quad[wp + 1:wp + 1 + n] | open_quad[wp:wp + n] | open_quad[1:1 + n] | open_quad[:n]) & mesh.valid[:n]
    vertex = border.nonzero().squeeze(1)
    ux, uy = _axis(mesh, vertex, 1, (1.0, 0.0))
    vx, vy = _axis(mesh, vertex, wp, (0.0, 1.0))
    cx, cy = mesh.x[vertex], mesh.y[vertex]
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))  # a, b, d, c: the cyclic order of a quad
    xs = [cx + 0.5 * (su * ux + sv * vx) for su, sv in signs]
    ys = [cy + 0.5 * (su * uy + sv * vy) for su, sv in signs]
    step = torch.maximum(torch.maximum(ux.abs(), uy.abs()), torch.maximum(vx.abs(), vy.abs()))
    inv = torch.where(step <= FOOTPRINT_MAX_STEP, mesh.inv_z[vertex] * (1.0 - FOOTPRINT_DEPTH_BIAS), -1.0)
    cols, box = _rows(xs, ys, inv, inv, mesh)
    return cols, box, vertex


def _keys(inv_z: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """z-test keys int64: the float32 bits of the inverse depth (> 0, so ordered like it) above the owner."""
    return (inv_z.view(torch.int32).long() << 32) | owner


def _draw(cols, box, frame, owner_of, mesh: Mesh, keys: torch.Tensor) -> None:
    """z-test every target pixel centre inside a drawn triangle of the table ``cols`` (see ``_rows``)
    into ``keys`` [F·H·W]; frame [n] is each row's frame, owner_of(rows, in_first) the owners to
    record. Edge functions are evaluated in float64, where the products of positions on the 1/SUBPIXEL
    grid are exact, so every triangle sharing an edge sees it with exactly opposite signs."""
    h, w = mesh.height, mesh.width
    device = keys.device
    x_lo, y_lo, nx, ny = box
    counts = nx * ny
    rows = counts.nonzero().squeeze(1)
    if rows.numel() == 0:
        return
    counts, nx = counts[rows], nx[rows]
    table = torch.stack([c[rows] for c in cols], 1)
    ends = counts.cumsum(0)
    starts = ends - counts
    base = (frame[rows] * h + y_lo[rows]) * w + x_lo[rows]  # target of (x_lo, y_lo)
    total = int(ends[-1])
    cuts = torch.searchsorted(ends, torch.arange(CANDIDATE_CHUNK, max(total, CANDIDATE_CHUNK), CANDIDATE_CHUNK,
                                                 device=device)).tolist()
    for first, last in zip([0] + cuts, cuts + [counts.shape[0]]):
        item = torch.repeat_interleave(torch.arange(first, last, device=device), counts[first:last])
        local = torch.arange(item.shape[0], device=device).sub_(starts[item]).add_(starts[first])
        width_q = nx[item]
        dy = local.div(width_q, rounding_mode="floor")
        dx = local.sub_(dy * width_q)
        row = table[item]
        fx, fy = dx.float().unsqueeze(1), dy.float().unsqueeze(1)
        rx, ry = (row[:, X0:X0 + 4] - fx).double().t(), (row[:, Y0:Y0 + 4] - fy).double().t()
        s01, s12 = _cross(rx[0], ry[0], rx[1], ry[1]) >= 0, _cross(rx[1], ry[1], rx[2], ry[2]) >= 0
        s23, s30 = _cross(rx[2], ry[2], rx[3], ry[3]) >= 0, _cross(rx[3], ry[3], rx[0], ry[0]) >= 0
        diagonal = _cross(rx[2], ry[2], rx[0], ry[0])  # edge p2→p0 of the first triangle
        inv0, inv1 = row[:, INV], row[:, INV + 1]
        in_first = s01 & s12 & (diagonal >= 0) & (inv0 > 0)
        in_second = s23 & s30 & (diagonal <= 0) & (inv1 > 0)
        key = torch.where(in_first | in_second,
                          _keys(torch.where(in_first, inv0, inv1), owner_of(rows[item], in_first)), NO_OWNER)
        keys.scatter_reduce_(0, base[item] + dy * w + dx, key, "amax")


def _draw_small(cols, box, small, frame, mesh: Mesh, keys: torch.Tensor) -> None:
    """``_draw`` for the quads of the mesh's table ``cols`` where ``small`` [count] (bounding box within
    SMALL_BOX × SMALL_BOX pixel centres), without listing candidates: each edge function is affine in
    the pixel centre, E(dx, dy) = E(0, 0) − dx·Δy + dy·Δx from the box origin, and is evaluated at the
    few centres of the box. Positions within a few pixels of the origin on the 1/SUBPIXEL grid make
    every term exact in float32, so the values equal ``_draw``'s. Centres outside a box write no key
    (NO_OWNER) to a pixel of the box's row or to the tail of ``keys``."""
    h, w = mesh.height, mesh.width
    x_lo, y_lo, nx, ny = box
    X, Y, inv0, inv1 = cols[X0:X0 + 4], cols[Y0:Y0 + 4], cols[INV], cols[INV + 1]
    edges = [(_cross(X[i], Y[i], X[j], Y[j]), Y[i] - Y[j], X[j] - X[i])
             for i, j in ((0, 1), (1, 2), (2, 3), (3, 0), (2, 0))]
    quad = torch.arange(inv0.shape[0], device=keys.device)
    key0 = torch.where(small & (inv0 > 0), _keys(inv0, 2 * quad), NO_OWNER)
    key1 = torch.where(small & (inv1 > 0), _keys(inv1, 2 * quad + 1), NO_OWNER)
    base = (frame * h + y_lo) * w + x_lo
    columns = [nx > dx for dx in range(SMALL_BOX)]
    rows = [ny > dy for dy in range(SMALL_BOX)]
    for dy in range(SMALL_BOX):
        for dx in range(SMALL_BOX):
            e01, e12, e23, e30, e20 = (((c + a) if dx else c) + b if dy else (c + a) if dx else c for c, a, b in edges)
            box_in = columns[dx] & rows[dy]
            in_first = (e01 >= 0) & (e12 >= 0) & (e20 >= 0) & box_in
            in_second = (e23 >= 0) & (e30 >= 0) & (e20 <= 0) & box_in
            key = torch.where(in_first, key0, torch.where(in_second, key1, NO_OWNER))
            keys.scatter_reduce_(0, base + (dy * w + dx), key, "amax")


def rasterize(u: torch.Tensor, v: torch.Tensor, inv_z: torch.Tensor, source_depth: torch.Tensor,
              valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which source pixels make each target pixel, and with which weights.

    u, v [F, H, W] float32: target column and row of every source pixel (any value where not
    valid); inv_z [F, H, W] float32: 1/z in the target camera (> 0 where valid); source_depth
    [F, H, W]: the depth the pixel was lifted with (> 0 where valid); valid [F, H, W] bool.
    Returns sources, three [F, H, W] int64 (rows of ``padded_pixels``), weights, three [F, H, W]
    float32 (perspective-correct, sum 1; 0 in holes), and seen [F, H, W] bool.
    """
    f, h, w = u.shape
    mesh = Mesh(u.float(), v.float(), inv_z.float(), source_depth.float(), valid)
    cols, box = quad_table(mesh)
    vertex_owner = 2 * mesh.count  # owners at or above this are vertices (their footprints)
    # Keys of every target pixel, and a tail that ``_draw_small``'s centres beyond a box may reach.
    keys = torch.full((f * h * w + SMALL_BOX * (w + 1),), NO_OWNER, dtype=torch.int64, device=u.device)
    frame = torch.arange(mesh.count, device=u.device) // mesh.per_frame
    x_lo, y_lo, nx, ny = box
    small = (nx <= SMALL_BOX) & (ny <= SMALL_BOX)
    _draw_small(cols, box, small, frame, mesh, keys)
    _draw(cols, (x_lo, y_lo, torch.where(small, 0, nx), ny), frame, lambda quad, in_first: 2 * quad + ~in_first,
          mesh, keys)
    fp_cols, fp_box, vertex = footprint_table(mesh, cols)
    _draw(fp_cols, fp_box, frame[vertex], lambda row, in_first: vertex[row] + vertex_owner, mesh, keys)
    return _interpolation(mesh, keys[:f * h * w].view(f, h, w), vertex_owner)


def _interpolation(mesh: Mesh, keys: torch.Tensor, vertex_owner: int):
    """Sources, weights and seen (see ``rasterize``) from the winning keys [F, H, W]. A footprint's pixel
    takes its vertex's colour, a hole the padding vertex's (zero, weight 0)."""
    f, h, w = keys.shape
    device = keys.device
    seen = keys >= 0
    owner = keys & 0xFFFFFFFF
    point = owner >= vertex_owner  # a footprint or a hole: all three corners are one vertex
    triangle = ~point
    second = owner & 1
    p0 = torch.where(point, torch.where(seen, owner - vertex_owner, mesh.wp - 1), owner >> 1)  # wp - 1: padding
    corners = (p0, p0 + (1 + second * mesh.wp) * triangle, p0 + (mesh.wp + 1 - second) * triangle)  # (a, b, d) or (a, d, c)
    xyz = torch.stack([mesh.x, mesh.y, mesh.inv_z], 1)
    g = [xyz.index_select(0, k.view(-1)).view(f, h, w, 3) for k in corners]
    py = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    px = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    r = [(t[..., 0] - px, t[..., 1] - py) for t in g]
    edge = (torch.where(point, 1.0, _cross(*r[1], *r[2])), _cross(*r[2], *r[0]), _cross(*r[0], *r[1]))  # opposite each corner
    weights = [e.mul_(t[..., 2]) for e, t in zip(edge, g)]
    total = (weights[0] + weights[1] + weights[2]).clamp_min_(torch.finfo(torch.float32).tiny)  # 0 in holes
    return corners, tuple(t.div_(total) for t in weights), seen


def interpolate(pixels: torch.Tensor, sources, weights) -> torch.Tensor:
    """Σ_k pixels[sources_k]·weights_k [F, H, W, C]: pixels [N, C] from ``padded_pixels``, sources and
    weights from ``rasterize``."""
    f, h, w = weights[0].shape
    out = pixels.index_select(0, sources[0].view(-1)).view(f, h, w, -1).mul_(weights[0].unsqueeze(-1))
    for k in (1, 2):
        out.addcmul_(pixels.index_select(0, sources[k].view(-1)).view(f, h, w, -1), weights[k].unsqueeze(-1))
    return out


def padded_pixels(values: torch.Tensor) -> torch.Tensor:
    """values [F, H, W, C] as the flat per-vertex array [F·(H+1)·(W+1), C] that ``rasterize``'s
    source indices point into (one zero column and row of padding per frame)."""
    c = values.shape[-1]
    return F.pad(values, (0, 0, 0, 1, 0, 1)).reshape(-1, c)
