"""The MSR-VTT, MSVD and VATEX converters in scripts/datasets/ on small files in the official layouts."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "datasets"
SPLITS = ("train", "val", "test")


@pytest.fixture
def run(monkeypatch, caplog):
    """Call a converter's ``main`` in this process (loaded by path) with ``--flag value`` pairs."""
    monkeypatch.syspath_prepend(str(SCRIPTS))  # the scripts import their sibling common.py
    caplog.set_level(logging.INFO)

    def call(script: str, **flags: object) -> int:
        spec = importlib.util.spec_from_file_location(script, SCRIPTS / f"{script}.py")
        module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main([arg for flag, value in flags.items() for arg in (f"--{flag}", str(value))])

    return call


def row(video_id: str, caption: str, ext: str) -> dict:
    return {"video": f"{video_id}.{ext}", "caption": caption, "image_id": video_id}


def outputs(out: Path) -> dict[str, tuple[list, dict]]:
    """split -> (annotation rows, COCO ground truth), read back as UTF-8."""
    return {
        split: (
            json.loads((out / f"cap_{split}.json").read_bytes().decode("utf-8")),
            json.loads((out / f"cap_{split}_gt.json").read_bytes().decode("utf-8")),
        )
        for split in SPLITS
    }


def assert_gt_matches(gt: dict, rows: list[dict]) -> None:
    """The split's ground truth holds exactly that split's videos and captions."""
    videos = list(dict.fromkeys(r["image_id"] for r in rows))
    assert gt["images"] == [{"id": v} for v in videos]
    assert gt["annotations"] == [
        {"image_id": r["image_id"], "id": n, "caption": r["caption"]} for n, r in enumerate(rows)
    ]


def messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def put(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- MSR-VTT


def msrvtt_files(tmp_path: Path) -> tuple[Path, Path]:
    def video(vid: str, split: str) -> dict:
        n = int(vid[5:])
        return {
            "category": 9,
            "url": f"https://www.youtube.com/watch?v=x{n}",
            "video_id": vid,
            "start time": 137.72,
            "end time": 149.44,
            "split": split,
            "id": n,
        }

    train_val = {
        "info": {"contributor": "Microsoft MSM group", "year": "2016"},
        "videos": [video("video10", "train"), video("video2", "train"), video("video5", "validate")],
        "sentences": [
            {"caption": "a man is cooking ", "video_id": "video10", "sen_id": 3},
            {"caption": "  a chef prepares food", "video_id": "video10", "sen_id": 1},
            {"caption": "a dog runs", "video_id": "video2", "sen_id": 0},
            {"caption": "   ", "video_id": "video2", "sen_id": 2},
            {"caption": "une femme chante au café ☕", "video_id": "video5", "sen_id": 4},
        ],
    }
    test = {
        "info": {"contributor": "Microsoft MSM group", "year": "2016"},
        "videos": [video("video7011", "test"), video("video7010", "test"), video("video7012", "test")],
        "sentences": [
            {"caption": "a crowd cheers", "video_id": "video7011", "sen_id": 130261},
            {"caption": "", "video_id": "video7011", "sen_id": 130262},
            {"caption": "a car drives", "video_id": "video7010", "sen_id": 130260},
            {"caption": "\t\n", "video_id": "video7012", "sen_id": 130263},
        ],
    }
    return put(tmp_path / "train_val_videodatainfo.json", train_val), put(
        tmp_path / "test_videodatainfo.json", test
    )


def test_msrvtt_rows_splits_and_ground_truth(tmp_path, run, caplog):
    train_val, test = msrvtt_files(tmp_path)
    out = tmp_path / "out"
    assert run("convert_msrvtt", train_val=train_val, test=test, out=out) == 0
    got = outputs(out)
    assert got["train"][0] == [  # videos in numeric order (video2 < video10), captions by sen_id
        row("video2", "a dog runs", "mp4"),
        row("video10", "a chef prepares food", "mp4"),
        row("video10", "a man is cooking", "mp4"),
    ]
    assert got["val"][0] == [row("video5", "une femme chante au café ☕", "mp4")]
    assert got["test"][0] == [
        row("video7010", "a car drives", "mp4"),
        row("video7011", "a crowd cheers", "mp4"),
    ]
    for split in SPLITS:
        assert_gt_matches(got[split][1], got[split][0])
    assert got["test"][1]["images"] == [{"id": "video7010"}, {"id": "video7011"}]
    assert "café ☕".encode() in (out / "cap_val.json").read_bytes()  # raw UTF-8, not \u escapes
    info = messages(caplog, logging.INFO)
    assert any(
        "train 2 videos / 3 captions, val 1 videos / 1 captions, test 2 videos / 2 captions; "
        "3 empty captions dropped" in m
        for m in info
    )
    warnings = messages(caplog, logging.WARNING)
    assert any(
        "(train 2 / val 1 / test 3) differ from the standard split (train 6513 / val 497 / test 2990)" in m
        for m in warnings
    )
    assert any("1 videos have no caption" in m and "video7012" in m for m in warnings)


def test_msrvtt_full_release_split_passes_the_check(tmp_path, run, caplog):
    splits = ["train"] * 6513 + ["validate"] * 497 + ["test"] * 2990
    videos = [{"video_id": f"video{n}", "split": s, "id": n} for n, s in enumerate(splits)]
    sentences = [{"caption": f"caption {n}", "video_id": f"video{n}", "sen_id": n} for n in range(10000)]
    train_val = put(tmp_path / "tv.json", {"videos": videos[:7010], "sentences": sentences[:7010]})
    test = put(tmp_path / "test.json", {"videos": videos[7010:], "sentences": sentences[7010:]})
    assert run("convert_msrvtt", train_val=train_val, test=test, out=tmp_path / "out", video_ext=".webm") == 0
    assert messages(caplog, logging.WARNING) == []
    got = outputs(tmp_path / "out")
    assert [len(got[s][1]["images"]) for s in SPLITS] == [6513, 497, 2990]
    assert got["val"][0][0] == row("video6513", "caption 6513", "webm")


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda tv: tv["videos"][0].update(split="validation"),
            "videos[0]: unknown split 'validation' (expected train, validate or test)",
        ),
        (lambda tv: tv["sentences"][1].pop("caption"), "sentences[1]: expected a 'caption' str"),
        (
            lambda tv: tv["sentences"][0].update(video_id="video99"),
            "sentences[0]: video_id 'video99' is not under 'videos' in either file",
        ),
        (
            lambda tv: tv["videos"].append(dict(tv["videos"][0])),
            "videos[3]: video_id 'video10' is listed twice",
        ),
    ],
)
def test_msrvtt_malformed_rows_name_file_and_row(tmp_path, run, caplog, change, message):
    train_val, test = msrvtt_files(tmp_path)
    data = json.loads(train_val.read_text(encoding="utf-8"))
    change(data)
    put(train_val, data)
    assert run("convert_msrvtt", train_val=train_val, test=test, out=tmp_path / "out") == 1
    [error] = messages(caplog, logging.ERROR)
    assert error.startswith(f"{train_val}: {message}")
    assert not (tmp_path / "out").exists()


def test_msrvtt_missing_and_invalid_files(tmp_path, run, caplog):
    train_val, _ = msrvtt_files(tmp_path)
    missing = tmp_path / "nowhere" / "test_videodatainfo.json"
    assert run("convert_msrvtt", train_val=train_val, test=missing, out=tmp_path / "out") == 1
    assert messages(caplog, logging.ERROR) == [f"--test file {missing} does not exist"]
    caplog.clear()
    broken = tmp_path / "broken.json"
    broken.write_text('{"videos": [', encoding="utf-8")
    assert run("convert_msrvtt", train_val=broken, test=train_val, out=tmp_path / "out") == 1
    [error] = messages(caplog, logging.ERROR)
    assert error.startswith(f"{broken}: not valid JSON: ") and "line 1 column 13" in error


# ------------------------------------------------------------------------------------------------ MSVD

MSVD_MAPPING = "abc_1_5 vid1\ndef-_0_10 vid1200\n\nghi_3_8 vid1201\njkl_2_4 vid1301\nmno_7_9 vid1970\n"
MSVD_CSV = (
    "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"
    'abc,1,5,101,clean,12,English,"A man is slicing a tomato, carefully."\n'
    "abc,1,5,102,unverified,9,German,Ein Mann schneidet eine Tomate.\n"
    "def-,0,10,103,clean,10,English,  a woman rides a horse  \n"
    "def-,0,10,104,clean,10,English,   \n"
    "ghi,3,8,105,clean,7,English,a cat plays the piano\n"
    "jkl,2,4,106,clean,8,English,naïve café owner pours ☕\n"
    "zzz,1,2,107,clean,5,English,an unmapped clip\n"
    "zzz,1,2,108,clean,5,English,another caption for it\n"
    "mno,7,9,109,clean,6,Chinese,一个男人在唱歌\n"
    "mno,7,9,110,clean,6,English,a man sings\n"
)
MSVD_TXT = (
    "# MSVD descriptions (English)\n"
    "# <youtubeid>_<start>_<end> <caption>\n"
    "abc_1_5 A man is slicing a tomato, carefully.\n"
    "def-_0_10   a woman rides a horse  \n"
    "def-_0_10\n"
    "\n"
    "ghi_3_8 a cat plays the piano\n"
    "jkl_2_4 naïve café owner pours ☕\n"
    "zzz_1_2 an unmapped clip\n"
    "zzz_1_2 another caption for it\n"
    "mno_7_9 a man sings\n"
)


def msvd_files(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    descriptions = tmp_path / (
        "MSR Video Description Corpus.csv" if fmt == "csv" else "AllVideoDescriptions.txt"
    )
    descriptions.write_text(MSVD_CSV if fmt == "csv" else MSVD_TXT, encoding="utf-8")
    mapping = tmp_path / "youtube_mapping.txt"
    mapping.write_text(MSVD_MAPPING, encoding="utf-8")
    return descriptions, mapping


@pytest.mark.parametrize("fmt", ["csv", "txt"])
def test_msvd_both_layouts_give_the_same_rows(tmp_path, run, caplog, fmt):
    descriptions, mapping = msvd_files(tmp_path, fmt)
    out = tmp_path / "out"
    assert run("convert_msvd", descriptions=descriptions, mapping=mapping, out=out) == 0
    got = outputs(out)
    assert got["train"][0] == [
        row("vid1", "A man is slicing a tomato, carefully.", "avi"),
        row("vid1200", "a woman rides a horse", "avi"),
    ]
    assert got["val"][0] == [row("vid1201", "a cat plays the piano", "avi")]
    assert got["test"][0] == [
        row("vid1301", "naïve café owner pours ☕", "avi"),
        row("vid1970", "a man sings", "avi"),
    ]
    for split in SPLITS:
        assert_gt_matches(got[split][1], got[split][0])
    assert got["val"][1]["images"] == [{"id": "vid1201"}]
    assert "naïve café owner pours ☕".encode() in (out / "cap_test.json").read_bytes()
    warnings = messages(caplog, logging.WARNING)
    assert any(
        f"1 clip keys (2 captions) have no entry in {mapping} and are skipped, e.g. zzz_1_2" in m
        for m in warnings
    )
    info = messages(caplog, logging.INFO)
    assert any(
        "train 2 videos / 2 captions, val 1 videos / 1 captions, test 2 videos / 2 captions; "
        "1 empty captions dropped" in m
        for m in info
    )
    assert any(f"skipped 2 non-English rows of {descriptions}" in m for m in info) == (fmt == "csv")


def test_msvd_reports_only_the_first_unmapped_keys_and_honours_video_ext(tmp_path, run, caplog):
    descriptions = tmp_path / "AllVideoDescriptions.txt"
    descriptions.write_text(
        "".join(f"k{i}_0_1 caption {i}\n" for i in range(7)) + "abc_1_5 kept\n", encoding="utf-8"
    )
    mapping = tmp_path / "youtube_mapping.txt"
    mapping.write_text("abc_1_5 vid1\n", encoding="utf-8")
    out = tmp_path / "out"
    assert run("convert_msvd", descriptions=descriptions, mapping=mapping, out=out, video_ext="mp4") == 0
    assert outputs(out)["train"][0] == [row("vid1", "kept", "mp4")]
    [unmapped] = [m for m in messages(caplog, logging.WARNING) if "no entry" in m]
    assert unmapped.startswith("msvd: 7 clip keys (7 captions)")
    assert unmapped.endswith("e.g. k0_0_1, k1_0_1, k2_0_1, k3_0_1, k4_0_1")


def test_msvd_missing_and_malformed_inputs(tmp_path, run, caplog):
    descriptions, mapping = msvd_files(tmp_path, "csv")
    missing = tmp_path / "youtube_mapping_missing.txt"
    assert run("convert_msvd", descriptions=descriptions, mapping=missing, out=tmp_path / "o") == 1
    assert messages(caplog, logging.ERROR) == [f"--mapping file {missing} does not exist"]

    caplog.clear()
    mapping.write_text("abc_1_5 vid1\nghi_3_8 video1201\n", encoding="utf-8")
    assert run("convert_msvd", descriptions=descriptions, mapping=mapping, out=tmp_path / "o") == 1
    assert messages(caplog, logging.ERROR) == [
        f"{mapping}:2: expected '<youtubeid>_<start>_<end> vid<N>', got 'ghi_3_8 video1201'"
    ]

    caplog.clear()
    mapping.write_text(MSVD_MAPPING, encoding="utf-8")
    descriptions.write_text("VideoID,Start,End,WorkerID,Description\nabc,1,5,101,a man\n", encoding="utf-8")
    assert run("convert_msvd", descriptions=descriptions, mapping=mapping, out=tmp_path / "o") == 1
    [error] = messages(caplog, logging.ERROR)
    assert error.startswith(f"{descriptions}: header lacks column(s) Language;")

    caplog.clear()
    other = tmp_path / "descriptions.dat"
    other.write_text("abc_1_5 a man\n", encoding="utf-8")
    assert run("convert_msvd", descriptions=other, mapping=mapping, out=tmp_path / "o") == 1
    assert messages(caplog, logging.ERROR) == [
        f"{other}: cannot tell the layout from the extension; pass --format"
    ]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------- VATEX


def vatex_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    train = [
        {
            "videoID": "zz9_000010_000020",
            "enCap": ["A person plays guitar. ", "someone strums a guitar"],
            "chCap": ["一个人在弹吉他。", "有人在弹吉他。"],
        },
        {
            "videoID": "Ptf_2VRj-V0_000122_000132",
            "enCap": ["  a child jumps into a pool", ""],
            "chCap": ["一个孩子跳进游泳池。", "孩子在游泳。"],
        },
    ]
    val = [
        {
            "videoID": "val_clip_000001_000011",
            "enCap": ["a busker sings «hello» in the Straße"],
            "chCap": ["一个街头艺人在唱歌。"],
        }
    ]
    test = [
        {
            "videoID": "test_b_000005_000015",
            "enCap": ["a dog barks", "a dog is barking loudly"],
            "chCap": ["一只狗在叫。", "狗在大声叫。"],
        },
        {"videoID": "test_a_000000_000010", "enCap": ["a woman dances"], "chCap": ["一个女人在跳舞。"]},
    ]
    return (
        put(tmp_path / "vatex_training_v1.0.json", train),
        put(tmp_path / "vatex_validation_v1.0.json", val),
        put(tmp_path / "vatex_public_test_english_v1.1.json", test),
    )


TRAIN_ROWS = [
    row("Ptf_2VRj-V0_000122_000132", "a child jumps into a pool", "mp4"),
    row("zz9_000010_000020", "A person plays guitar.", "mp4"),
    row("zz9_000010_000020", "someone strums a guitar", "mp4"),
]
VAL_ROWS = [row("val_clip_000001_000011", "a busker sings «hello» in the Straße", "mp4")]


def test_vatex_public_test_scheme(tmp_path, run, caplog):
    train, val, test = vatex_files(tmp_path)
    out = tmp_path / "out"
    assert run("convert_vatex", train=train, val=val, test=test, out=out) == 0
    got = outputs(out)
    assert got["train"][0] == TRAIN_ROWS
    assert got["val"][0] == VAL_ROWS
    assert got["test"][0] == [
        row("test_a_000000_000010", "a woman dances", "mp4"),
        row("test_b_000005_000015", "a dog barks", "mp4"),
        row("test_b_000005_000015", "a dog is barking loudly", "mp4"),
    ]
    for split in SPLITS:
        assert_gt_matches(got[split][1], got[split][0])
    assert got["test"][1]["images"] == [{"id": "test_a_000000_000010"}, {"id": "test_b_000005_000015"}]
    assert all("一" not in r["caption"] for split in SPLITS for r in got[split][0])  # English only
    assert "«hello» in the Straße".encode() in (out / "cap_val.json").read_bytes()
    assert any(
        "train 2 videos / 3 captions, val 1 videos / 1 captions, test 2 videos / 3 captions; "
        "1 empty captions dropped" in m
        for m in messages(caplog, logging.INFO)
    )
    assert any(
        "(train 2 / val 1 / test 2) differ from the standard split (train 25991 / val 3000 / test 6000)" in m
        for m in messages(caplog, logging.WARNING)
    )


def test_vatex_val_as_test_scheme(tmp_path, run, caplog):
    train, val, _ = vatex_files(tmp_path)
    out = tmp_path / "out"
    assert run("convert_vatex", train=train, val=val, split_scheme="val_as_test", out=out) == 0
    got = outputs(out)
    assert got["train"][0] == TRAIN_ROWS
    assert got["val"][0] == got["test"][0] == VAL_ROWS
    assert got["test"][1] == got["val"][1] and got["test"][1]["images"] == [{"id": "val_clip_000001_000011"}]
    assert any("val and test are the same 1 videos" in m for m in messages(caplog, logging.WARNING))


def test_vatex_scheme_flags_and_bad_inputs(tmp_path, run, caplog):
    train, val, test = vatex_files(tmp_path)
    out = tmp_path / "out"
    assert run("convert_vatex", train=train, val=val, out=out) == 1
    assert messages(caplog, logging.ERROR) == [
        "--split_scheme public_test needs --test (vatex_public_test_english_v1.1.json); "
        "without it pass --split_scheme val_as_test"
    ]
    caplog.clear()
    assert run("convert_vatex", train=train, val=val, test=test, split_scheme="val_as_test", out=out) == 1
    assert messages(caplog, logging.ERROR) == [
        f"--split_scheme val_as_test uses the validation set as test; drop --test {test}"
    ]
    caplog.clear()
    missing = tmp_path / "vatex_validation_missing.json"
    assert run("convert_vatex", train=train, val=missing, test=test, out=out) == 1
    assert messages(caplog, logging.ERROR) == [f"--val file {missing} does not exist"]

    caplog.clear()
    no_captions = put(
        tmp_path / "vatex_public_test_without_annotations.json", [{"videoID": "test_a_000000_000010"}]
    )
    assert run("convert_vatex", train=train, val=val, test=no_captions, out=out) == 1
    [error] = messages(caplog, logging.ERROR)
    assert error.startswith(f"{no_captions}: row 0: no 'enCap' list of English captions")

    caplog.clear()
    put(val, [{"videoID": "zz9_000010_000020", "enCap": ["leaked"]}])
    assert run("convert_vatex", train=train, val=val, test=test, out=out) == 1
    assert messages(caplog, logging.ERROR) == [
        f"{val}: videoID 'zz9_000010_000020' is also in the train file"
    ]

    caplog.clear()
    put(val, [{"videoID": "v_000001_000002", "enCap": ["fine", 7]}])
    assert run("convert_vatex", train=train, val=val, test=test, out=out) == 1
    assert messages(caplog, logging.ERROR) == [f"{val}: row 0 enCap[1]: caption is int, expected a string: 7"]
    assert not out.exists()


# --------------------------------------------------------------------------------------- as commands


@pytest.mark.parametrize(
    "script, argv, missing_flag",
    [
        ("convert_msrvtt", ["--train_val", "MISSING", "--test", "MISSING"], "--train_val"),
        ("convert_msvd", ["--descriptions", "x.csv", "--mapping", "MISSING"], "--mapping"),
        ("convert_vatex", ["--train", "MISSING", "--val", "MISSING", "--test", "MISSING"], "--train"),
    ],
)
def test_scripts_run_standalone_and_fail_without_traceback(tmp_path, script, argv, missing_flag):
    """Run as files from elsewhere, without PYTHONPATH: the error is one line naming the file."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    missing = tmp_path / "missing.json"
    argv = [str(missing) if a == "MISSING" else a for a in argv]
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{script}.py"), *argv, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"ERROR {missing_flag} file {missing} does not exist\n"


def test_msrvtt_script_converts_as_a_command(tmp_path):
    train_val, test = msrvtt_files(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "convert_msrvtt.py"),
            "--train_val",
            str(train_val),
            "--test",
            str(test),
            "--out",
            "annotations",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "annotations").iterdir()) == sorted(
        [f"cap_{s}.json" for s in SPLITS] + [f"cap_{s}_gt.json" for s in SPLITS]
    )
    assert outputs(tmp_path / "annotations")["val"][0] == [
        row("video5", "une femme chante au café ☕", "mp4")
    ]
    assert proc.stderr.splitlines()[-1].startswith("INFO msrvtt -> annotations: train 2 videos / 3 captions")


def test_undecodable_input_unwritable_output_and_any_locale(tmp_path, run, caplog, monkeypatch):
    descriptions, mapping = msvd_files(tmp_path, "txt")
    descriptions.write_bytes("abc_1_5 a man in a caf\u00e9\n".encode("latin-1"))
    assert run("convert_msvd", descriptions=descriptions, mapping=mapping, out=tmp_path / "o") == 1
    assert messages(caplog, logging.ERROR) == [
        f"{descriptions}: not UTF-8 text (byte 22: invalid continuation byte)"
    ]

    caplog.clear()
    train, val, test = vatex_files(tmp_path)
    taken = tmp_path / "a_file"
    taken.write_text("", encoding="utf-8")
    assert run("convert_vatex", train=train, val=val, test=test, out=taken) == 1
    assert messages(caplog, logging.ERROR) == [f"{taken}: File exists"]

    # Outputs are UTF-8 whatever the locale says.
    monkeypatch.setattr("locale.getpreferredencoding", lambda do_setlocale=True: "cp1252")
    assert run("convert_vatex", train=train, val=val, test=test, out=tmp_path / "o") == 0
    for path in (tmp_path / "o").iterdir():
        path.read_bytes().decode("utf-8")
        assert path.stat().st_mode & 0o044  # readable by others, not 0600 from mkstemp
