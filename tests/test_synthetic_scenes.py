"""The procedural scene generator: a seed gives one scene, its camera and its caption; renders are exact."""

import torch

from inversedvs.warp import synthetic as S

FRAMES, HEIGHT, WIDTH = 5, 24, 36


def test_a_seed_gives_one_scene_and_different_seeds_differ():
    a, b = S.random_scene(7), S.random_scene(7)
    assert a == b
    first = S.render_clip(a, FRAMES, HEIGHT, WIDTH)["image"]
    assert torch.equal(first, S.render_clip(b, FRAMES, HEIGHT, WIDTH)["image"])
    others = [S.render_clip(S.random_scene(s), FRAMES, HEIGHT, WIDTH)["image"] for s in (8, 9)]
    assert all((first - o).abs().mean() > 0.05 for o in others)
    assert len({S.random_scene(s).caption for s in range(40)}) == 40


def test_captions_use_only_the_caption_vocabulary_and_name_the_scene():
    vocabulary = set(S.caption_vocabulary())
    for seed in range(60):
        clip = S.random_scene(seed)
        words = clip.caption.replace(",", " ").split()
        assert set(words) <= vocabulary, clip.caption
        assert words.count("ball") == len(clip.scene.spheres)
        assert ("sky" in words) == (clip.scene.sky is not None)
        move = clip.caption.split("camera ")[-1]
        assert S.CAMERA_MOVES[move] == (clip.camera_velocity, clip.camera_yaw_deg)


def test_clips_move_their_objects_and_camera():
    seeds = [s for s in range(200) if S.random_scene(s).caption.endswith("camera moving forward")]
    clip = S.random_scene(seeds[0])
    out = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, dtype=torch.float64)
    centres = S.camera_centers(out["world_to_camera"])
    assert torch.allclose(centres[0], torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(centres[-1], torch.tensor(clip.camera_velocity, dtype=torch.float64))
    assert (out["image"][0] - out["image"][-1]).abs().mean() > 0.01  # the clip is not still
    bouncing = next(S.random_scene(s) for s in range(200) if "bouncing" in S.random_scene(s).caption)
    ball = next(b for b in bouncing.scene.spheres if b.bounce > 0)
    heights = S.sphere_centers(ball, torch.linspace(0, 1, 9, dtype=torch.float64))[:, 1]
    assert heights.max() == ball.center[1] and heights.min() < ball.center[1] - 0.4 * ball.bounce


def test_depth_and_cameras_are_exact_every_hit_projects_back_onto_its_pixel():
    clip = S.random_scene(3)
    out = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, dtype=torch.float64)
    rendered = S.render(clip.scene, out["world_to_camera"], out["K"], HEIGHT, WIDTH, out["times"])
    points, depth = rendered["points"], out["depth"]
    hit = depth > 0
    assert hit.float().mean() > 0.3
    w2c = out["world_to_camera"]
    cam = torch.einsum("fij,fhwj->fhwi", w2c[:, :3, :3], points) + w2c[:, None, None, :3, 3]
    assert torch.allclose(cam[..., 2][hit], depth[hit], atol=1e-9)
    uv = torch.einsum("ij,fhwj->fhwi", out["K"], cam)[..., :2] / cam[..., 2:]
    v, u = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float64), torch.arange(WIDTH, dtype=torch.float64),
                          indexing="ij")
    assert (uv[..., 0] - u).abs()[hit].max() < 1e-6 and (uv[..., 1] - v).abs()[hit].max() < 1e-6


def test_float32_renders_match_float64_and_supersampling_averages():
    clip = S.random_scene(11)
    exact = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, dtype=torch.float64)
    fast = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, dtype=torch.float32)
    assert fast["image"].dtype == torch.float32
    assert ((fast["image"].double() - exact["image"]).abs() > 0.02).float().mean() < 0.01
    smooth = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, supersample=2)["image"]
    assert smooth.shape == fast["image"].shape and 0 <= smooth.min() and smooth.max() <= 1
    assert 0 < (smooth - fast["image"]).abs().mean() < 0.1
    videos, captions = S.render_clips([11, 12], FRAMES, HEIGHT, WIDTH)
    assert videos.shape == (2, FRAMES, HEIGHT, WIDTH, 3) and captions[0] == clip.caption
    assert torch.equal(videos[0], fast["image"])


def test_supersampled_intrinsics_are_the_same_camera_on_a_finer_grid():
    K = S.intrinsics(HEIGHT, WIDTH, S.SCENE_FOV_X_DEG)[0]
    assert torch.allclose(S.supersampled_intrinsics(K, 3), S.intrinsics(3 * HEIGHT, 3 * WIDTH, S.SCENE_FOV_X_DEG)[0])
    clip = S.random_scene(4)
    a = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, supersample=2)
    b = S.render_clip(clip, FRAMES, HEIGHT, WIDTH, supersample=2, poses=a["world_to_camera"], K=K)
    assert torch.equal(a["image"], b["image"])
