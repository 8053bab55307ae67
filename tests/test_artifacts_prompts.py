"""Prompt files handed in by users: every bad one is refused with the file named and what is wrong, from the
header before the data where the header already says so (a 1.6 GB .npy is never read)."""

import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_torch

from itsel_ray.artifacts import PromptFileError, load_prompt, prompt_from_bytes, prompt_to_bytes, save_prompt

PROMPT = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    path = save_prompt(tmp_path / f"p{suffix}", PROMPT)
    np.testing.assert_array_equal(load_prompt(path), PROMPT)
    np.testing.assert_array_equal(prompt_from_bytes(path.read_bytes(), fmt=suffix[1:]), PROMPT)


def test_other_float_layouts_read(tmp_path):
    bf16 = torch.from_numpy(PROMPT).to(torch.bfloat16)
    np.testing.assert_array_equal(prompt_from_bytes(save_torch({"prompt": bf16})), bf16.float().numpy())
    np.testing.assert_array_equal(prompt_from_bytes(save_torch({"prompt": torch.from_numpy(PROMPT).double()})),
                                  PROMPT)
    # PEFT's prompt-tuning adapter names its tensor prompt_embeddings
    np.testing.assert_array_equal(prompt_from_bytes(save_torch({"prompt_embeddings": torch.from_numpy(PROMPT)})),
                                  PROMPT)
    np.save(tmp_path / "f.npy", np.asfortranarray(PROMPT))
    np.testing.assert_array_equal(load_prompt(tmp_path / "f.npy"), PROMPT)


@pytest.mark.parametrize("values,dtype", [(np.ones((3, 4)), np.int64), (np.ones((3, 4)), np.bool_)])
def test_integer_and_boolean_prompts_are_refused(tmp_path, values, dtype):
    np.save(tmp_path / "a.npy", values.astype(dtype))
    with pytest.raises(PromptFileError, match=rf"a\.npy: prompt dtype is {np.dtype(dtype)}"):
        load_prompt(tmp_path / "a.npy")
    (tmp_path / "a.safetensors").write_bytes(save_torch({"prompt": torch.from_numpy(values.astype(dtype))}))
    with pytest.raises(PromptFileError, match=r"a\.safetensors: tensor 'prompt' has dtype (I64|BOOL)"):
        load_prompt(tmp_path / "a.safetensors")


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_nan_and_infinite_values_are_refused(tmp_path, suffix):
    bad = PROMPT.copy()
    bad[1, 2], bad[2, 0] = np.nan, np.inf
    path = save_prompt(tmp_path / f"nan{suffix}", bad)
    with pytest.raises(PromptFileError, match=rf"nan{suffix}: the prompt has 2 NaN or infinite values \(first at "
                                              r"token 1, dimension 2\)"):
        load_prompt(path)


def test_all_zero_prompts_are_refused_where_asked(tmp_path):
    path = save_prompt(tmp_path / "zero.npy", np.zeros((3, 4), np.float32))
    assert not load_prompt(path).any()  # the engine may start from anything of the right shape
    with pytest.raises(PromptFileError, match=r"zero\.npy: the prompt is all zeros"):
        load_prompt(path, allow_zero=False)


def test_pickled_objects_are_never_loaded(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PromptFileError, match=r"obj\.npy: the \.npy file holds Python objects"):
        load_prompt(tmp_path / "obj.npy")


@pytest.mark.parametrize("suffix,cut", [(".safetensors", 10), (".safetensors", -5), (".npy", -5), (".npy", 20),
                                        (".safetensors", 4)])
def test_truncated_files_are_refused_naming_the_file(tmp_path, suffix, cut):
    data = prompt_to_bytes(PROMPT, fmt=suffix[1:])
    path = tmp_path / f"best{suffix}"
    path.write_bytes(data[:cut])
    with pytest.raises(PromptFileError, match=rf"best{suffix}: "):
        load_prompt(path)


def test_a_huge_npy_is_refused_from_its_header(tmp_path):
    """1.6 GB declared (200,000 x 2,048 float32) in a sparse file: refused in milliseconds, naming the file."""
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (200_000, 2048)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.truncate(200_000 * 2048 * 4 + f.tell())
    t0 = time.perf_counter()
    with pytest.raises(PromptFileError, match=r"huge\.npy: the header declares a tensor of shape \(200000, 2048\) "
                                              r"\(1562\.5 MiB\), above the 64 MiB"):
        load_prompt(path)
    assert time.perf_counter() - t0 < 1.0


def test_a_huge_or_broken_safetensors_header_is_refused(tmp_path):
    path = tmp_path / "huge.safetensors"
    header = json.dumps({"prompt": {"dtype": "F32", "shape": [200_000, 2048],
                                    "data_offsets": [0, 200_000 * 2048 * 4]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(PromptFileError, match=r"huge\.safetensors: the header declares a tensor of shape"):
        load_prompt(path)
    path.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(PromptFileError, match=r"huge\.safetensors: not a safetensors file or truncated"):
        load_prompt(path)
    path.write_bytes((4).to_bytes(8, "little") + b"nope")
    with pytest.raises(PromptFileError, match=r"huge\.safetensors: cannot read the safetensors header"):
        load_prompt(path)


def test_shape_checks_still_name_the_file(tmp_path):
    path = save_prompt(tmp_path / "s.npy", PROMPT)
    with pytest.raises(PromptFileError, match=r"s\.npy: prompt has shape \(3, 4\) but the model expects \(3, 8\)"):
        load_prompt(path, shape=(3, 8))
    np.save(tmp_path / "flat.npy", PROMPT.ravel())
    with pytest.raises(PromptFileError, match=r"flat\.npy: a prompt must be 2-D"):
        load_prompt(tmp_path / "flat.npy")


def test_a_safetensors_prompt_file_is_byte_reproducible_and_reads_back(tmp_path):
    import hashlib
    import subprocess
    import sys

    from safetensors import safe_open
    from safetensors.numpy import load


    # The safetensors library orders metadata by a per-process hash seed: the same call gave other bytes in
    # another process. Three processes, one file.
    code = ("import hashlib, numpy as np; from itsel_ray.artifacts import prompt_to_bytes; "
            "p = np.arange(12, dtype=np.float32).reshape(3, 4) / 7; "
            "print(hashlib.sha256(prompt_to_bytes(p, metadata={'step': 5, 'score': 81.25, 'source': 'mnli', "
            "'seed': 42})).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
               for _ in range(3)}
    prompt = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    data = prompt_to_bytes(prompt, metadata={"step": 5, "score": 81.25, "source": "mnli", "seed": 42})
    assert digests == {hashlib.sha256(data).hexdigest() + "\n"}
    # the header is the library's, keys in one order: a golden value that holds on any machine
    assert data[8:].startswith(b'{"__metadata__":{"score":"81.25","seed":"42","source":"mnli","step":"5"},')
    assert hashlib.sha256(data).hexdigest()[:16] == "04f8f5134f044a6e"
    np.testing.assert_array_equal(load(data)["prompt"], prompt)
    path = tmp_path / "p.safetensors"
    path.write_bytes(data)
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"score": "81.25", "seed": "42", "source": "mnli", "step": "5"}
    np.testing.assert_array_equal(load_prompt(path), prompt)


def test_a_file_without_a_prompt_tensor_or_with_a_3d_one_is_refused():
    with pytest.raises(PromptFileError, match=r"no prompt tensor: expected one named 'prompt' or 'prompt_embeddings' "
                                              r"\(found \['w'\]\)"):
        prompt_from_bytes(save_torch({"w": torch.from_numpy(PROMPT)}), name="x.safetensors")
    with pytest.raises(PromptFileError, match=r"a prompt must be 2-D \[tokens, d_model\], got shape \(1, "):
        prompt_from_bytes(save_torch({"prompt": torch.from_numpy(PROMPT[None])}), name="x.safetensors")


def test_errors_never_quote_the_files_bytes(tmp_path):
    secret = tmp_path / "passwd.npy"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(PromptFileError) as err:
        load_prompt(secret)
    assert "root" not in str(err.value).replace(str(tmp_path), "") and "no NUMPY magic" in str(err.value)
    other = tmp_path / "passwd.safetensors"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(PromptFileError) as err:
        load_prompt(other)
    assert "root" not in str(err.value).replace(str(tmp_path), "")
