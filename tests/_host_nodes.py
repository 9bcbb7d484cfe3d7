"""Stand-ins for core's text and vision encoders in the host check's Wan run (a ComfyUI custom node file).

Core's CLIPLoader type 'wan' always builds the full umt5-xxl (5.7 B parameters) and CLIPVisionLoader
the full ViT-H (632 M): too large for a CPU check. scripts/comfy_host_check.py copies this file into
the temporary ``custom_nodes/`` and swaps these nodes in for CLIPTextEncode / CLIPVisionEncode; they
give what those give Wan 2.1 (a prompt embedding [1, tokens, 4096]; ViT-H's penultimate hidden
states [1, 257, 1280]), seeded by the text / fixed, so the run is reproducible.
"""

import zlib

import torch

TEXT_TOKENS = 8
TEXT_WIDTH = 4096  # umt5-xxl's width, Wan 2.1's text_dim
VISION_TOKENS = 257  # ViT-H/14 at 224x224: 16x16 patches and the class token
VISION_WIDTH = 1280
SCALE = 0.5


def _randn(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * SCALE


class TinyTextEncode:
    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True})}}

    def encode(self, text):
        return ([[_randn((1, TEXT_TOKENS, TEXT_WIDTH), zlib.crc32(text.encode())), {}]],)


class TinyVisionEncode:
    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def encode(self, image):
        from comfy.clip_vision import Output

        out = Output()
        out["penultimate_hidden_states"] = _randn((image.shape[0], VISION_TOKENS, VISION_WIDTH), 0)
        return (out,)


NODE_CLASS_MAPPINGS = {"InverseDVSHostCheck_TinyTextEncode": TinyTextEncode,
                       "InverseDVSHostCheck_TinyVisionEncode": TinyVisionEncode}
