"""The flow's checks that need no Prefect server: stage names, cron strings, a stage's exit
status, an API URL that does not answer."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from imgclf.errors import ImgclfError, ParamsError
from imgclf.orchestration.dvcrun import _exit_status, check_stages
from imgclf.orchestration.flowrun import check_api, check_cron


def test_unknown_stage_names_are_a_params_error_naming_them() -> None:
    check_stages(["train", "evaluate"])
    check_stages(None)
    with pytest.raises(ParamsError, match=r"stages: unknown \['trian'\]"):
        check_stages(["trian", "evaluate"])


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 * * * 1-5", "0 0 1 * *"])
def test_valid_cron_strings_pass(cron: str) -> None:
    check_cron(cron, "--cron")


@pytest.mark.parametrize("cron", ["61 3 * * *", "0 3 * *", "H 3 * * *", "every night"])
def test_invalid_cron_strings_name_the_key(cron: str) -> None:
    with pytest.raises(ParamsError, match=r"^params.yaml: orchestrate.cron: ") as failure:
        check_cron(cron, "params.yaml: orchestrate.cron")
    assert failure.value.exit_code == 2 and "\n" not in str(failure.value)


def test_the_exit_status_is_read_from_dvcs_failure_chain() -> None:
    try:
        try:
            raise RuntimeError("failed to run: imgclf train, exited with 75")
        except RuntimeError as cause:
            raise ValueError("failed to reproduce 'train'") from cause
    except ValueError as exc:
        assert _exit_status(exc) == 75
    assert _exit_status(ValueError("no status here")) is None


def test_an_api_url_that_does_not_answer_is_one_line() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    with pytest.raises(ImgclfError, match=r"^PREFECT_API_URL http://127\.0\.0\.1:\d+/api does not answer \("):
        check_api(url)


def test_any_http_answer_counts_as_an_api_that_answers() -> None:
    class Refuse(http.server.BaseHTTPRequestHandler):  # like Prefect Cloud without a key
        def do_GET(self) -> None:
            self.send_error(401)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Refuse) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        check_api(f"http://127.0.0.1:{server.server_address[1]}/api")
