"""The web console in a real browser (headless Chromium via Selenium) against a live broker.

Screenshots of every page visited go to the test's tmp dir and, when
``KAFKACOMPAT_SCREENSHOT_DIR`` is set, are copied there too.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from kafkacompat.testing import BrokerThread, create_scram_users, dev_config, running_broker
from tests.internals import internals

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="headless Chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    with running_broker(dev_config(tmp_path / "data")) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 0
    shared = os.environ.get("KAFKACOMPAT_SCREENSHOT_DIR")
    if shared:
        Path(shared).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(shared) / path.name)
    return path


def base_url(broker: BrokerThread) -> str:
    assert broker.http_address is not None
    return f"http://{broker.http_address}"


def wait_for(driver: Any, css: str, timeout: float = 10) -> Any:
    return WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def click_and_load(driver: Any, element: Any, css: str = "main") -> Any:
    """Click what loads a new page; return once the new page's ``css`` is there."""
    old = driver.find_element(By.CSS_SELECTOR, "main")
    element.click()
    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(old))
    return wait_for(driver, css)


def cells(driver: Any, table_id: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def test_topic_list_shows_a_created_topic(
    broker: BrokerThread, browser: Any, tmp_path: Path
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics(
            [NewTopic("console-orders", 3, 1, topic_configs={"retention.ms": "3600000"})]
        )
    finally:
        admin.close()
    browser.get(base_url(broker) + "/topics")
    row_link = wait_for(browser, 'a[data-topic="console-orders"]')
    rows = {row[0]: row for row in cells(browser, "topics")}
    assert rows["console-orders"][1] == "3"
    screenshot(browser, tmp_path, "console-topics")
    click_and_load(browser, row_link, "#partitions")
    assert [row[0] for row in cells(browser, "partitions")] == ["0", "1", "2"]
    configs = {row[0]: row for row in cells(browser, "configs")}
    assert configs["retention.ms"][1:] == ["3600000", "override"]
    assert configs["cleanup.policy"][2] == "default"
    screenshot(browser, tmp_path, "console-topic")


def test_message_browser_shows_a_produced_record(
    broker: BrokerThread, browser: Any, tmp_path: Path
) -> None:
    topic = "console-events"
    internals(broker).create_topic(topic, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(25):
        producer.send(topic, key=f"filler-{i}".encode(), value=f"plain text {i}".encode())
    document = {"user": "ada", "items": [1, 2, 3], "total": 9.5}
    producer.send(
        topic,
        key=b"user-42",
        value=json.dumps(document).encode(),
        headers=[("trace-id", b"abc123"), ("raw", b"\x00\xff")],
    )
    later = int(time.time() * 1000) + 600_000
    for i in range(2):
        producer.send(topic, key=f"later-{i}".encode(), value=b"v", timestamp_ms=later + i * 1000)
    producer.flush()
    producer.close()

    browser.get(base_url(broker) + f"/topics/{topic}")
    click_and_load(browser, wait_for(browser, "#partitions a"), "#messages")
    first = cells(browser, "messages")
    assert len(first) == 20
    assert first[0][0] == "0" and first[0][2] == "filler-0" and first[0][3] == "plain text 0"
    click_and_load(browser, browser.find_element(By.ID, "next-page"), "#messages")
    rows = cells(browser, "messages")
    assert [r[0] for r in rows] == [str(o) for o in range(20, 28)]
    offset, timestamp, key, value, headers = rows[5]
    assert offset == "25"
    assert timestamp.endswith("UTC")
    assert key == "user-42"
    assert json.loads(value) == document
    assert '"user": "ada"' in value and "\n" in value  # pretty-printed
    assert "trace-id: abc123" in headers
    assert "raw: 00ff" in headers
    screenshot(browser, tmp_path, "console-messages")

    Select(browser.find_element(By.NAME, "format")).select_by_visible_text("hex")
    offset_box = browser.find_element(By.NAME, "offset")
    offset_box.clear()
    offset_box.send_keys("25")
    click_and_load(
        browser, browser.find_element(By.CSS_SELECTOR, "form.browse button"), "#messages"
    )
    rows = cells(browser, "messages")
    assert [r[0] for r in rows] == ["25", "26", "27"]
    assert rows[0][2] == "7573 6572 2d34 32"  # "user-42"
    screenshot(browser, tmp_path, "console-messages-hex")

    # The first record at or after a timestamp.
    offset_box = browser.find_element(By.NAME, "offset")
    offset_box.clear()
    browser.find_element(By.NAME, "timestamp").send_keys(str(later + 500))
    Select(browser.find_element(By.NAME, "format")).select_by_visible_text("auto")
    click_and_load(
        browser, browser.find_element(By.CSS_SELECTOR, "form.browse button"), "#messages"
    )
    rows = cells(browser, "messages")
    assert [(r[0], r[2]) for r in rows] == [("27", "later-1")]


def test_groups_page_shows_the_lag_of_a_group_that_committed(
    broker: BrokerThread, browser: Any, tmp_path: Path
) -> None:
    topic = "console-lag"
    internals(broker).create_topic(topic, 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        producer.send(topic, value=b"v", partition=i % 2)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id="console-readers",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        consumer.commit(
            {
                TopicPartition(topic, 0): OffsetAndMetadata(2, None),
                TopicPartition(topic, 1): OffsetAndMetadata(5, None),
            }
        )
        browser.get(base_url(broker) + "/groups")
        wait_for(browser, 'a[data-group="console-readers"]')
        rows = {row[0]: row for row in cells(browser, "groups")}
        assert rows["console-readers"][1] == "Stable"
        assert rows["console-readers"][3] == "1"
        assert rows["console-readers"][4] == "3"  # (5 - 2) + (5 - 5)
        screenshot(browser, tmp_path, "console-groups")
        group_link = browser.find_element(By.CSS_SELECTOR, 'a[data-group="console-readers"]')
        click_and_load(browser, group_link, "#offsets")
        assert cells(browser, "offsets") == [
            [topic, "0", "2", "5", "3"],
            [topic, "1", "5", "5", "0"],
        ]
        members = cells(browser, "members")
        assert len(members) == 1
        assert members[0][3] == f"{topic}: 0, 1"
        assert browser.find_element(By.ID, "total-lag").text == "3"
        screenshot(browser, tmp_path, "console-group")
    finally:
        consumer.close()


def test_overview_shows_brokers_and_live_throughput(
    broker: BrokerThread, browser: Any, tmp_path: Path
) -> None:
    topic = "console-traffic"
    internals(broker).create_topic(topic, 1)
    browser.get(base_url(broker) + "/")
    wait_for(browser, "#brokers")
    brokers = cells(browser, "brokers")
    assert brokers[0][0] == "1" and brokers[0][3] == "controller"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    try:
        deadline = time.monotonic() + 20
        drawn = False
        while time.monotonic() < deadline and not drawn:
            for _ in range(200):
                producer.send(topic, value=b"z" * 100)
            producer.flush()
            time.sleep(0.2)
            points = browser.find_element(
                By.CSS_SELECTOR, 'svg[data-series="messages_in"] polyline'
            ).get_attribute("points")
            rate = browser.find_element(By.ID, "rate-messages_in").text
            drawn = bool(points) and len(points.split()) >= 2 and rate not in ("…", "0.0")
        assert drawn, "the messages-in sparkline never drew a non-zero rate"
        # A few more seconds of traffic, so the screenshot shows a line.
        until = time.monotonic() + 4
        while time.monotonic() < until:
            for _ in range(100):
                producer.send(topic, value=b"z" * 100)
            producer.flush()
            time.sleep(0.1)
    finally:
        producer.close()
    screenshot(browser, tmp_path, "console-overview")


def post(
    broker: BrokerThread,
    path: str,
    form: dict[str, str],
    auth: str | None,
    origin: str | None = None,
) -> int:
    request = urllib.request.Request(
        base_url(broker) + path, data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    if origin is not None:
        request.add_header("Origin", origin)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_changes_are_refused_on_a_read_only_console(broker: BrokerThread) -> None:
    assert post(broker, "/topics", {"name": "nope", "partitions": "1"}, "admin:secret") == 403
    assert internals(broker).find_topic("nope") is None


def test_changes_need_the_setting_and_a_broker_user(tmp_path: Path) -> None:
    data = tmp_path / "data"
    create_scram_users(data, {"admin": "admin-secret"}, ["SCRAM-SHA-256"])
    config = dev_config(data, **{"http.console.write.enable": True})
    with running_broker(config) as broker:
        form = {"name": "made-here", "partitions": "2"}
        assert post(broker, "/topics", form, None) == 401
        assert post(broker, "/topics", form, "admin:wrong") == 401
        elsewhere = "http://elsewhere.example"
        assert post(broker, "/topics", form, "admin:admin-secret", elsewhere) == 403
        assert internals(broker).find_topic("made-here") is None
        assert post(broker, "/topics", form, "admin:admin-secret", base_url(broker)) == 303
        made = internals(broker).find_topic("made-here")
        assert made is not None and made.partitions == 2

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for _ in range(4):
            producer.send("made-here", value=b"v", partition=0)
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="resettable")
        consumer.commit({TopicPartition("made-here", 0): OffsetAndMetadata(4, None)})
        consumer.close()
        reset = {"topic": "made-here", "partition": "0", "to": "earliest"}
        assert post(broker, "/groups/resettable", reset, "admin:admin-secret") == 303
        coordinator = broker.running.broker.groups.coordinator
        committed = coordinator.fetch_offsets("resettable", [("made-here", 0)])
        assert committed[("made-here", 0)] is not None
        assert committed[("made-here", 0)].offset == 0  # type: ignore[union-attr]

        delete = {"action": "delete"}
        assert post(broker, "/topics/made-here", delete, "admin:admin-secret") == 303
        assert internals(broker).find_topic("made-here") is None
