"""The web app's upload cache stays bounded: Gradio keeps every upload unless ``delete_cache`` is set."""

import time

import httpx

import inat_hf.app
from inat_hf.app import ClassifierPage
from tests.app.browser import free_port


def test_uploads_are_deleted_once_old(trained_model_dir, demo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    assert inat_hf.app.DELETE_CACHE[0] > 0 and inat_hf.app.DELETE_CACHE[1] > 0
    monkeypatch.setattr(inat_hf.app, "DELETE_CACHE", (1, 1))  # every second, the files older than a second
    page = ClassifierPage.from_pretrained(str(trained_model_dir), tta_views=2)
    demo = page.build()
    assert demo.delete_cache == (1, 1)
    port = free_port()
    page.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        photo = sorted((demo_root / "val").rglob("*.jpg"))[0].read_bytes()
        uploaded = []
        for i in range(5):
            files = {"files": (f"photo{i}.jpg", photo, "image/jpeg")}
            uploaded += httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", files=files).json()
        cached = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
        assert len(cached) == 5 and all(str(tmp_path / "cache") in path for path in uploaded)
        deadline = time.monotonic() + 20
        while any(path.is_file() for path in cached) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(path.is_file() for path in cached)  # all gone: the cache does not grow with every visitor
    finally:
        demo.close()
