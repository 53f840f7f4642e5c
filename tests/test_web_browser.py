"""The staff web service in a real browser (headless Chromium from Debian, driven by selenium),
against the real gateway process (with its detector) and Mosquitto.

One store for the module: a private broker, the gateway, `cart-gateway web` over HTTPS
with a fresh store CA. A cart's boards are played by StoreFeed: a rendered pack in the
camera's frames and a weight that does not fit it, so the gateway asks the shopper;
the shopper taps "None of these" on the cart screen page, which opens a human review.
Screenshots of every page go to out/web-screenshots/ (docs/web.md shows some).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from cart_testing.broker import MOSQUITTO, Broker, free_port
from cart_testing.gateway import GatewayProcess, write_config
from cart_testing.web import StoreFeed, WebProcess, cli, make_tls, spki_hash, write_web_config

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("CART_WEB_SCREENSHOTS", ROOT / "out" / "web-screenshots"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(exe):
            pytest.fail(f"{exe} is missing: run `make setup` (apt-get install chromium chromium-driver)")
    if not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is not installed: run `make setup`")
    tmp = tmp_path_factory.mktemp("webstore")
    broker = Broker(tmp).start()
    gwc = write_config(tmp / "gateway.toml", broker.port, tmp / "gw-state", detector=True)
    gw = GatewayProcess(gwc, tmp / "gateway.log").start()
    ca, cert, key = make_tls(tmp / "tls")
    port = free_port()
    wc = write_web_config(tmp / "web.toml", gwc, port, tmp / "web-state", cert, key, login_max_failures=3)
    feed = StoreFeed(broker.port, "c001")
    web = None
    try:
        _wait(lambda: (tmp / "gw-state" / "gateway.sqlite3").exists(), 30, "the gateway's database")
        feed.online()
        web = WebProcess(wc, tmp / "web.log", ca, port).start()
        cli("web-user", "add", "alice", "--role", "reviewer", "--password-stdin", "--config", str(wc),
            stdin=PASSWORD + "\n")
        from cart_gateway.web.accounts import Accounts     # the same store of accounts the CLI writes
        acc = Accounts(tmp / "web-state" / "web.sqlite3")
        acc.add_user("sam", "supervisor", PASSWORD)
        acc.add_user("bob", "reviewer", PASSWORD)
        acc.close()
        screen = cli("web-screen-url", "c001", "--config", str(wc)).stdout.strip()
        yield {"tmp": tmp, "web": web, "ca": ca, "cert": cert, "feed": feed, "screen": screen,
               "web_db": tmp / "web-state" / "web.sqlite3", "gw_db": tmp / "gw-state" / "gateway.sqlite3"}
    finally:
        feed.close()
        if web:
            web.stop()
        gw.stop()
        broker.stop()


@pytest.fixture(scope="module")
def browser(store):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    prof = store["tmp"] / "chrome-profile"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={prof}", "--window-size=1280,1000",
              # trust exactly the test store's server key, as a tablet would trust the store CA
              f"--ignore-certificate-errors-spki-list={spki_hash(store['cert'])}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(prof, ignore_errors=True)


def _wait(cond, timeout, what):
    # each wait is for what must happen (a page, a row): at least 30 s, a loaded CI machine
    # running Chromium beside the rest of the suite can take seconds for any of them
    timeout = max(timeout, 30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = cond()
        if r:
            return r
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _submit(drv, el):
    """Click a button that submits a form (or call .submit()) and wait for the next page to replace this one."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import WebDriverException
    old = drv.find_element(By.TAG_NAME, "html")
    el.submit() if el.tag_name == "input" else el.click()

    def replaced(d):
        try:
            return EC.staleness_of(old)(d)
        except WebDriverException as e:
            # chromedriver sometimes answers a node of the page just left with an inspector
            # error instead of "stale element": that too means the page was replaced
            if "does not belong to the document" in str(e):
                return True
            raise
    WebDriverWait(drv, 15).until(replaced)


def _tls(store):
    import ssl
    return ssl.create_default_context(cafile=str(store["ca"]))


def _shot(drv, name):
    drv.save_screenshot(str(SHOTS / f"{name}.png"))


def _gw(store, sql, args=()):
    c = sqlite3.connect(f"file:{store['gw_db']}?mode=ro", uri=True)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def _login(drv, store, user="alice", password=PASSWORD, next_path="/queue"):
    from selenium.webdriver.common.by import By
    drv.get(store["web"].base + "/login?next=" + next_path)
    drv.find_element(By.ID, "user").send_keys(user)
    drv.find_element(By.ID, "password").send_keys(password)
    _submit(drv, drv.find_element(By.ID, "login"))


def _new_prompt(store, jpeg_sku="SKU0001", grams=2000.0):
    """A movement the gateway cannot decide: the camera sees one pack, the weight says another."""
    from cart_gateway.catalogue import Catalogue
    from cart_model.render import encode_jpeg, render_scene
    cat = Catalogue.load()
    before = {r[0] for r in _gw(store, "SELECT record FROM decisions WHERE outcome='ask'")}
    store["feed"].movement(grams, [encode_jpeg(render_scene(cat, jpeg_sku, 11 + k)[0]) for k in range(2)])
    _wait(lambda: {r[0] for r in _gw(store, "SELECT record FROM decisions WHERE outcome='ask'")} - before, 20,
          "the gateway to prompt the shopper")


def _open_reviews(store):
    return _gw(store, "SELECT review_id FROM reviews WHERE status='open' ORDER BY t_ms")


def _review_or_next_prompt(store, answered: set, page):
    """After a "none": the review it opened, or the gateway's next question on the screen (the
    policy may ask once more, e.g. for the other product's barcode, before a human):
    ("review", id) or ("prompt", id)."""
    def got():
        rows = _open_reviews(store)
        if rows:
            return "review", rows[0][0]
        ids = set(re.findall(r'data-prompt="([^"]+)"', page())) - answered
        return ("prompt", sorted(ids)[0]) if ids else None
    return _wait(got, 10, "a review or the gateway's next question")


def _open_review(store) -> str:
    """Make sure a review is open (prompt, then the shopper answers "none" on the screen page to
    every question the gateway asks about it)."""
    rows = _open_reviews(store)
    if rows:
        return rows[0][0]
    _new_prompt(store)
    c = httpx.Client(verify=_tls(store))
    page = _wait(lambda: (lambda t: t if "data-prompt=" in t else None)(c.get(store["screen"]).text), 10, "prompt")
    pid = re.search(r'data-prompt="([^"]+)"', page).group(1)
    key = store["screen"].split("key=")[1]
    answered = set()
    for _ in range(3):
        c.post(store["screen"].split("?")[0] + "/answer", data={"key": key, "prompt_id": pid, "choice": "none"})
        answered.add(pid)
        kind, pid = _review_or_next_prompt(store, answered, lambda: c.get(store["screen"]).text)
        if kind == "review":
            return pid
    raise AssertionError("three \"none\" answers and still no review")


# ---------------------------------------------------------------------------------------- the flow
def test_screen_prompt_review_verdict_and_basket_everywhere(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    _new_prompt(store)
    # the cart's tablet: the prompt with pictures of its options, answered by a tap
    drv.get(store["screen"])
    _wait(lambda: drv.find_elements(By.CSS_SELECTOR, ".prompt .opt img"), 10, "the prompt on the screen page")
    imgs = drv.find_elements(By.CSS_SELECTOR, ".prompt .opt img")
    assert all(drv.execute_script("return arguments[0].naturalWidth", i) > 0 for i in imgs)   # pictures load
    assert "/frames/" not in drv.page_source                                                  # never a frame
    _shot(drv, "screen-prompt")
    answered = set()
    for _ in range(3):   # "none of these" to every question the gateway asks about it, then a human
        answered.add(drv.find_element(By.CSS_SELECTOR, ".prompt").get_attribute("data-prompt"))
        _submit(drv, drv.find_element(By.CSS_SELECTOR, ".prompt button.none"))
        kind, rid = _review_or_next_prompt(store, answered, lambda: (drv.get(store["screen"]), drv.page_source)[1])
        if kind == "review":
            break
    else:
        raise AssertionError("three \"none\" answers and still no review")

    # staff: log in, the queue, the oldest review
    _login(drv, store)
    _wait(lambda: "Review queue" in drv.page_source, 10, "the queue")
    rows = drv.find_elements(By.CSS_SELECTOR, "tr.review-row")
    assert rows and rows[0].get_attribute("data-review") == rid
    assert "shopper chose none of the options" in rows[0].text
    _shot(drv, "queue")
    _submit(drv, rows[0].find_element(By.LINK_TEXT, "Open"))
    _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "img.frame"), 10, "the review page")
    frames = drv.find_elements(By.CSS_SELECTOR, "img.frame")
    assert len(frames) == 2
    _wait(lambda: all(drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth", f) > 0
                      for f in frames), 10, "frames loaded")
    plot = drv.find_element(By.CSS_SELECTOR, "#weight-plot svg")
    assert plot.find_elements(By.CSS_SELECTOR, "rect.movement-window") and "+2000.0 g" in plot.text
    cands = drv.find_elements(By.CSS_SELECTOR, "tr.candidate")
    assert len(cands) >= 2 and "%" in cands[0].text
    frame_src = frames[0].get_attribute("src")
    _shot(drv, "review")

    # the verdict: the top candidate; the page goes on to the next review (none left: the queue)
    sku = cands[0].find_element(By.CSS_SELECTOR, "button.verdict-one").get_attribute("data-sku")
    _submit(drv, cands[0].find_element(By.CSS_SELECTOR, "button.verdict-one"))
    _wait(lambda: drv.find_elements(By.ID, "flash"), 10, "the verdict's result")
    assert "applied" in drv.find_element(By.ID, "flash").text
    assert _gw(store, "SELECT status FROM reviews WHERE review_id=?", (rid,))[0][0] == "closed"
    from cart_gateway.catalogue import Catalogue
    name = Catalogue.load()[sku].name

    # the basket changed: on the store view and on the cart's screen
    drv.get(store["web"].base + "/store")
    card = drv.find_element(By.ID, "cart-c001")
    assert name in card.text and card.find_element(By.CSS_SELECTOR, ".pill").text == "online"
    assert card.find_elements(By.CSS_SELECTOR, "tr.line img.thumb")
    assert len(drv.find_elements(By.CSS_SELECTOR, "#figures svg")) == 3
    _shot(drv, "store")
    drv.get(store["screen"])
    assert name in drv.find_element(By.ID, "basket").text
    _shot(drv, "screen-basket")

    # the review is resolved: the gateway deleted its frames, the URL now shows nothing
    drv.get(frame_src)
    assert "no such frame" in drv.page_source
    drv.get(store["web"].base + f"/review/{rid}")
    assert drv.find_elements(By.CSS_SELECTOR, ".frame-gone") and not drv.find_elements(By.CSS_SELECTOR, "img.frame")
    assert f"verdict {sku} × 1" in drv.find_element(By.ID, "closed").text


def test_supervisor_sees_the_verdict_in_the_audit_log_and_a_reviewer_cannot(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    drv.delete_all_cookies()
    _login(drv, store, "alice", next_path="/audit")
    assert "Supervisors only" in drv.page_source
    drv.delete_all_cookies()
    _login(drv, store, "sam", next_path="/audit")
    rows = [r.text for r in drv.find_elements(By.CSS_SELECTOR, "#audit tr")]
    assert any(" alice verdict " in f" {r} " for r in rows), rows[:5]
    assert any("alice login" in r for r in rows) and any("screen-c001 screen_answer" in r for r in rows)
    _shot(drv, "audit")


def test_wrong_password_is_refused_and_repeated_failures_lock_the_account(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    drv.delete_all_cookies()
    _login(drv, store, "alice", "not the password")
    assert "Wrong name or password" in drv.find_element(By.ID, "login-error").text
    assert not drv.get_cookie("cart_staff")
    _shot(drv, "login-wrong-password")
    for _ in range(3):                         # login_max_failures = 3 in this store's web.toml
        _login(drv, store, "bob", "guess")
    _login(drv, store, "bob", PASSWORD)        # the right password, too late
    assert "locked" in drv.find_element(By.ID, "login-error").text


def test_an_expired_session_goes_back_to_the_login(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    drv.delete_all_cookies()
    _login(drv, store)
    _wait(lambda: "Review queue" in drv.page_source, 10, "the queue")
    # the session sat idle past session_idle_s (1800 s): move its last use back, as time would
    c = sqlite3.connect(store["web_db"])
    c.execute("UPDATE sessions SET last_ms = last_ms - 3600 * 1000 WHERE user='alice'")
    c.commit()
    c.close()
    drv.get(store["web"].base + "/store")
    assert "/login" in drv.current_url and drv.find_element(By.ID, "expired")
    _shot(drv, "login-expired")


def test_a_forged_verdict_form_without_the_csrf_token_is_refused(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    rid = _open_review(store)
    drv.delete_all_cookies()
    _login(drv, store, next_path=f"/review/{rid}")
    form = drv.find_element(By.ID, "verdict-nothing").find_element(By.XPATH, "./..")
    drv.execute_script("arguments[0].querySelector('input[name=csrf]').remove()", form)
    _submit(drv, drv.find_element(By.ID, "verdict-nothing"))
    assert "CSRF" in drv.find_element(By.TAG_NAME, "body").text
    drv.get(store["web"].base + f"/review/{rid}")
    form = drv.find_element(By.ID, "verdict-nothing").find_element(By.XPATH, "./..")
    drv.execute_script("arguments[0].querySelector('input[name=csrf]').value = 'forged'", form)
    _submit(drv, drv.find_element(By.ID, "verdict-nothing"))
    assert "CSRF" in drv.find_element(By.TAG_NAME, "body").text
    assert _gw(store, "SELECT status FROM reviews WHERE review_id=?", (rid,))[0][0] == "open"   # nothing sent


def test_frames_only_for_logged_in_staff_and_only_this_stores(store, browser):
    drv = browser
    rid = _open_review(store)
    fid = _gw(store, "SELECT request FROM reviews WHERE review_id=?", (rid,))[0][0]
    frame = json.loads(fid)["frames"][0]
    url = store["web"].base + f"/frames/{frame}.jpg"
    anon = httpx.Client(verify=_tls(store))
    r = anon.get(url)
    assert r.status_code == 401 and not r.content.startswith(b"\xff\xd8")
    drv.delete_all_cookies()
    drv.get(url)
    assert "login required" in drv.page_source
    # the cart screen is not staff: its key opens nothing but its own screen
    key = store["screen"].split("key=")[1]
    assert anon.get(url, params={"key": key}).status_code == 401
    assert anon.get(store["web"].base + "/screen/c002", params={"key": key}).status_code == 403
    # logged in: the frame, never cached; another store's or cart's frame ids do not exist here
    _login(drv, store)
    cookie = drv.get_cookie("cart_staff")["value"]
    staff = httpx.Client(verify=_tls(store), cookies={"cart_staff": cookie})
    r = staff.get(url)
    assert r.status_code == 200 and r.content.startswith(b"\xff\xd8") and "no-store" in r.headers["cache-control"]
    for other in ("/frames/c999/1/1.jpg", "/frames/c002/1/1.jpg", "/frames/c001/99/1.jpg",
                  "/frames/..%2F..%2Fgateway.sqlite3/1/1.jpg", "/frames/c001/1/../../gateway.sqlite3"):
        assert staff.get(store["web"].base + other).status_code == 404, other
    drv.get(store["web"].base + "/frames/c999/1/1.jpg")
    assert "no such frame" in drv.page_source


def test_search_and_a_several_products_verdict(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    rid = _open_review(store)
    drv.delete_all_cookies()
    _login(drv, store, next_path=f"/review/{rid}")
    drv.find_element(By.ID, "search").send_keys("rice basmati")
    _submit(drv, drv.find_element(By.ID, "search"))
    results = drv.find_elements(By.CSS_SELECTOR, "#results tr.result")
    assert len(results) >= 3 and all("Basmati" in r.text for r in results)
    drv.execute_script("arguments[0].scrollIntoView()", drv.find_element(By.ID, "results"))
    _shot(drv, "review-search")
    # a wrong code in the several-products form: a clear error, nothing sent
    drv.find_element(By.NAME, "add_sku_1").send_keys("SKU9999")
    _submit(drv, drv.find_element(By.CSS_SELECTOR, "#several button"))
    assert "'SKU9999' is not a SKU or an EAN-13" in drv.find_element(By.ID, "error").text
    assert _gw(store, "SELECT status FROM reviews WHERE review_id=?", (rid,))[0][0] == "open"
    from cart_gateway.catalogue import Catalogue
    cat = Catalogue.load()
    drv.find_element(By.NAME, "add_sku_1").send_keys("SKU0014")
    drv.find_element(By.NAME, "add_sku_2").send_keys(cat["SKU0001"].ean13)     # by its barcode
    _submit(drv, drv.find_element(By.CSS_SELECTOR, "#several button"))
    _wait(lambda: drv.find_elements(By.ID, "flash"), 10, "the verdict's result")
    assert "applied" in drv.find_element(By.ID, "flash").text
    verdict = json.loads(_gw(store, "SELECT verdict FROM reviews WHERE review_id=?", (rid,))[0][0])
    assert verdict["sku"] == "SKU0014"
    drv.get(store["web"].base + "/store")
    text = drv.find_element(By.ID, "cart-c001").text
    assert cat["SKU0014"].name in text and cat["SKU0001"].name in text


def test_checkout_shows_paid_on_the_screen_and_the_store_view(store, browser):
    from selenium.webdriver.common.by import By
    drv = browser
    assert not _gw(store, "SELECT 1 FROM reviews WHERE status='open'")
    store["feed"].c.publish("carts/c001/checkout", json.dumps({"v": 1, "req_id": "exit-1"}), qos=1).wait_for_publish(5)
    _wait(lambda: _gw(store, "SELECT 1 FROM receipts WHERE cart='c001' AND req_id='exit-1'"), 10, "the receipt")
    drv.get(store["screen"])
    assert "Paid: receipt" in drv.find_element(By.ID, "paid").text
    _shot(drv, "screen-paid")
    drv.delete_all_cookies()
    _login(drv, store, next_path="/store")
    card = drv.find_element(By.ID, "cart-c001")
    assert "paid: receipt" in card.text
    # the figures now count the basket: 2 reviews in 1 basket today
    figures = drv.find_element(By.ID, "figures").text
    assert "2000.0 (2 reviews)" in figures.replace(",", ""), figures


def test_oversized_and_flooded_forms_are_refused(store):
    c = httpx.Client(verify=_tls(store))
    assert c.post(store["web"].base + "/login", content=b"a=" + b"x" * 20000,
                  headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 413
    key = store["screen"].split("key=")[1]
    flood = "&".join(f"f{i}=1" for i in range(200)) + f"&key={key}"
    r = c.post(store["screen"].split("?")[0] + "/answer", content=flood.encode(),
               headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400


def test_plain_http_gets_nothing(store):
    with pytest.raises(httpx.HTTPError):
        r = httpx.get(store["web"].base.replace("https://", "http://") + "/login", timeout=5)
        assert r.status_code >= 400      # uvicorn answers a TLS port's plain request with nothing usable
        raise httpx.HTTPError("refused")
