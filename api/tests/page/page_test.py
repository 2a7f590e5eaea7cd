"""The page at `/`, in a real headless browser (Debian's chromium through selenium), against a
running voucher-api that page_test.sh starts on a table voucher-etl published.

Usage: page_test.py  (configured by the environment page_test.sh sets)
  PAGE_URL         the API without a token
  PAGE_TOKEN_URL   a second API on the same tables that requires PAGE_TOKEN
  PAGE_TOKEN       that token
  PAGE_REPUBLISH   a command that publishes a new table version (different amounts)
  PAGE_HOLD        a command that writes a version the gate holds (a country missing)
  PAGE_OUT         where the screenshots go
"""

import json
import os
import subprocess
import time
import unittest
import urllib.request

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["PAGE_URL"]
TOKEN_URL = os.environ["PAGE_TOKEN_URL"]
TOKEN = os.environ["PAGE_TOKEN"]
OUT = os.environ["PAGE_OUT"]
WAIT = 20


def get_json(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def browser(width=1280, height=1000):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def severe(driver, allowed=()):
    """Console errors, except the network statuses a test provoked on purpose."""
    return [entry for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and not any(a in entry["message"] for a in allowed)]


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


class Page(unittest.TestCase):
    def setUp(self):
        self.driver = browser()
        self.addCleanup(self.driver.quit)

    def wait_for_text(self, element_id, expected):
        WebDriverWait(self.driver, WAIT).until(ec.text_to_be_present_in_element((By.ID, element_id), expected))

    def open(self, url=URL):
        self.driver.get(url + "/")
        table = get_json(url + "/api/v1/table", TOKEN if url == TOKEN_URL else None)
        return table

    def test_the_page_shows_the_live_version_provenance_and_every_amount(self):
        self.driver.set_window_size(1280, 2900)  # the whole page in the screenshot
        table = self.open()
        self.wait_for_text("fact-version", table["version"])
        self.assertIn(f"{table['manifest']['rows_read']:,}", text(self.driver, "fact-rows-read"))
        for rule in table["drop_rules"]:
            cells = self.driver.find_elements(By.CSS_SELECTOR, f'#drops tr[data-rule="{rule["rule"]}"] td')
            self.assertEqual(cells[-1].text, f"{rule['dropped']:,}", rule["rule"])
        segments = get_json(URL + "/api/v1/segments")
        shown = 0
        for country, types in segments["countries"].items():
            for segment_type, rows in types.items():
                table_el = self.driver.find_element(
                    By.CSS_SELECTOR, f'table[data-country="{country}"][data-type="{segment_type}"]')
                for row in rows:
                    cell = table_el.find_element(By.CSS_SELECTOR, f'tr[data-segment="{row["segment"]}"] td.voucher')
                    self.assertEqual(cell.text, f"{row['voucher']:,}", (country, segment_type, row["segment"]))
                    shown += 1
                svg = table_el.find_element(By.XPATH, "preceding-sibling::figure/*[local-name()='svg']")
                self.assertEqual(len(svg.find_elements(By.CSS_SELECTOR, "rect.amount-bar")), len(rows))
        self.assertGreater(shown, 0)
        self.driver.save_screenshot(os.path.join(OUT, "page.png"))
        self.assertEqual(severe(self.driver), [])

    def test_the_form_shows_an_answer_and_the_422_errors_by_their_fields(self):
        self.open()
        self.wait_for_text("fact-version", "")
        expected = json.load(urllib.request.urlopen(urllib.request.Request(
            URL + "/api/v1/voucher", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
                             "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14,
                             "segment_name": "frequent_segment"}).encode()), timeout=10))
        self.driver.find_element(By.CSS_SELECTOR, "#try-form button[type=submit]").click()
        self.wait_for_text("answer", expected["segment"])
        self.assertEqual(text(self.driver, "answer-voucher"), f"{expected['voucher']:,}")

        orders = self.driver.find_element(By.ID, "total_orders")
        orders.clear()
        orders.send_keys("-3")
        self.driver.find_element(By.ID, "last_order_ts").clear()
        self.driver.find_element(By.CSS_SELECTOR, "#try-form button[type=submit]").click()
        self.wait_for_text("total_orders-error", "greater than or equal to 0")
        self.assertEqual(text(self.driver, "last_order_ts-error"), "Field required")
        self.assertEqual(orders.get_attribute("aria-invalid"), "true")
        self.assertEqual(text(self.driver, "country_code-error"), "")
        self.assertIn("refused 2 field(s)", text(self.driver, "answer"))
        self.driver.save_screenshot(os.path.join(OUT, "page-422.png"))
        self.assertEqual(severe(self.driver, allowed=("422",)), [])

    def test_the_look_up_by_id_mode_sends_only_the_id_and_the_segment_type(self):
        self.open()
        self.wait_for_text("fact-version", "")
        self.driver.find_element(By.ID, "mode-id").click()
        self.assertFalse(self.driver.find_element(By.ID, "country_code").is_displayed())
        self.driver.find_element(By.CSS_SELECTOR, "#try-form button[type=submit]").click()
        # This API has no customer store: a request by id lacks the profile's four fields,
        # which the answer names (they are not on the form in this mode).
        self.wait_for_text("answer", "refused 4 field(s)")
        for field in ("country_code", "last_order_ts", "first_order_ts", "total_orders"):
            self.assertIn(f"{field}: Field required", text(self.driver, "answer"))
            self.assertEqual(text(self.driver, f"{field}-error"), "")
        self.driver.find_element(By.ID, "mode-full").click()
        self.assertTrue(self.driver.find_element(By.ID, "country_code").is_displayed())
        self.assertEqual(severe(self.driver, allowed=("422",)), [])

    def test_a_new_version_appears_without_a_reload(self):
        table = self.open()
        self.wait_for_text("fact-version", table["version"])
        self.driver.execute_script("window.__sameDocument = true;")
        time.sleep(1.1)  # version names have a one-second resolution
        subprocess.run(os.environ["PAGE_REPUBLISH"], shell=True, check=True)
        deadline = time.time() + WAIT
        while get_json(URL + "/api/v1/table")["version"] == table["version"]:
            self.assertLess(time.time(), deadline, "the API did not load the new version")
            time.sleep(0.2)
        new = get_json(URL + "/api/v1/table")["version"]
        self.wait_for_text("fact-version", new)
        self.assertIn(f"version {new} is live now", text(self.driver, "announce"))
        self.assertTrue(self.driver.execute_script("return window.__sameDocument === true;"), "no reload")
        self.assertEqual(severe(self.driver), [])

    def publish_and_wait(self, command):
        before = get_json(URL + "/api/v1/versions")
        time.sleep(1.1)  # version names have a one-second resolution
        subprocess.run(os.environ[command], shell=True, check=True)
        after = get_json(URL + "/api/v1/versions")
        self.assertEqual(len(after["versions"]), len(before["versions"]) + 1, command)
        return after

    def test_what_changed_shows_the_diff_and_a_held_version_with_its_failed_checks(self):
        self.publish_and_wait("PAGE_REPUBLISH")
        deadline = time.time() + WAIT
        while get_json(URL + "/api/v1/versions")["changes"] is None:
            self.assertLess(time.time(), deadline, "no diff against the version before")
            time.sleep(0.2)
        versions = self.publish_and_wait("PAGE_HOLD")
        held = versions["held"][0]
        self.assertEqual(versions["versions"][0]["state"], "held")
        self.assertIn("missing_segments", [c["check"] for c in held["failed"]])

        self.driver.set_window_size(1280, 2900)
        table = self.open()
        self.wait_for_text("fact-version", table["version"])
        self.assertEqual(table["version"], versions["live"], "a held version is not served")
        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, f'#held div[data-version="{held["version"]}"]'))
        shown = self.driver.find_element(By.CSS_SELECTOR, f'#held div[data-version="{held["version"]}"]')
        checks = [li.get_attribute("data-check") for li in shown.find_elements(By.TAG_NAME, "li")]
        self.assertEqual(checks, [c["check"] for c in held["failed"]])
        self.assertIn("Chile", shown.text)

        changes = versions["changes"]
        self.wait_for_text("changes-summary", f"Version {changes['to']} against {changes['from']}")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
        self.assertEqual(len(rows), len(changes["segments"]))
        for row, segment in zip(rows, changes["segments"]):
            cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            self.assertEqual(cells[:4], [segment["country_code"], segment["segment_name"],
                                         segment["segment"], segment["change"]])
            for cell, value in zip(cells[4:], (segment["from_amount"], segment["to_amount"])):
                self.assertEqual(cell, "none" if value is None else f"{value:,}")
        self.driver.save_screenshot(os.path.join(OUT, "page-what-changed.png"))
        self.assertEqual(severe(self.driver), [])

    def test_with_a_token_the_page_asks_for_it_keeps_it_in_the_tab_and_shows_a_401(self):
        table = self.open(TOKEN_URL)
        WebDriverWait(self.driver, WAIT).until(ec.visibility_of_element_located((By.ID, "token")))
        self.assertIn("needs a token", text(self.driver, "token-message"))
        field = self.driver.find_element(By.ID, "token")
        field.send_keys("wrong-token")
        field.submit()
        self.wait_for_text("token-message", "refused (401)")
        field = self.driver.find_element(By.ID, "token")
        field.send_keys(TOKEN)
        field.submit()
        self.wait_for_text("fact-version", table["version"])
        self.assertEqual(self.driver.execute_script("return sessionStorage.getItem('voucher-api-token')"), TOKEN)
        self.assertEqual(self.driver.execute_script("return localStorage.length"), 0)
        self.assertEqual(severe(self.driver, allowed=("401",)), [])

    def test_accessibility_phone_width_and_content_security_policy(self):
        self.open()
        self.wait_for_text("fact-version", "")
        self.driver.find_element(By.CSS_SELECTOR, "#try-form button[type=submit]").click()
        self.wait_for_text("answer", "for Peru")
        axe = Axe(self.driver)
        axe.inject()
        results = axe.run()
        violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results["violations"]]
        self.assertEqual(violations, [], "axe-core found accessibility violations")
        self.assertGreater(len(results["passes"]), 10, "axe-core ran its rules")

        # Keyboard: the form's fields and button are reachable with Tab, in order.
        self.driver.find_element(By.TAG_NAME, "body").click()
        reached = []
        for _ in range(40):
            self.driver.switch_to.active_element.send_keys("\ue004")  # Tab
            reached.append(self.driver.switch_to.active_element.get_attribute("id") or "")
        for field in ("customer_id", "country_code", "last_order_ts", "first_order_ts", "total_orders", "segment_name"):
            self.assertIn(field, reached)

        # A phone's viewport (a desktop window cannot be made this narrow).
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True})
        self.driver.refresh()
        self.wait_for_text("fact-version", "")
        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#segments table"))
        self.assertEqual(self.driver.execute_script("return document.documentElement.clientWidth;"), 375)
        overflow = self.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        self.assertLessEqual(overflow, 0, "nothing scrolls sideways at phone width")
        self.driver.save_screenshot(os.path.join(OUT, "page-phone.png"))

        with urllib.request.urlopen(URL + "/", timeout=10) as response:
            policy = response.headers["Content-Security-Policy"]
        self.assertIn("script-src 'self'", policy)
        self.assertNotIn("unsafe-inline", policy)
        self.assertIn("default-src 'none'", policy)
        self.assertEqual(severe(self.driver), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
