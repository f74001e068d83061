// Loads the status page of a running ratelimiter in headless chromium, as an operator would:
// reads what it shows, enters the admin token, pages through counters, resets a blocked one,
// and waits for the page to refresh by itself after more traffic. Prints what it saw as JSON
// on stdout for tests/shipped/status_page.rs to assert on, and saves a screenshot.
//
// node status_page.js <base url> <admin token> <screenshot path> <blocked value> <traffic value>
"use strict";
const { chromium } = require("playwright-core");

const [base, token, screenshot, blockedValue, trafficValue] = process.argv.slice(2);
// Generous: the test suite runs this beside Envoy, schemathesis and Redis on two shared cores.
const WAIT = { timeout: 60000 };

const rows = (selector) =>
  [...document.querySelectorAll(selector + " tbody tr:not(.empty)")].map((row) =>
    [...row.cells].map((cell) => cell.textContent.trim())
  );

async function check(value) {
  await fetch(base + "/json", {
    method: "POST",
    body: JSON.stringify({ domain: "edge", descriptors: [{ entries: [{ key: "remote_address", value }] }] }),
  });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.RATELIMITER_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  const seen = { problems: [], elsewhere: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1200 } });
    page.setDefaultTimeout(WAIT.timeout);
    page.on("pageerror", (error) => seen.problems.push("page error: " + error.message));
    page.on("request", (request) => {
      if (!request.url().startsWith(base)) seen.elsewhere.push(request.url());
    });

    await page.goto(base + "/");
    await page.waitForFunction(() => document.querySelector("#status").textContent !== "loading", null, WAIT);
    seen.before_token = await page.evaluate(() => document.querySelector("#message").textContent);

    await page.fill("#token", token);
    await page.click("#use-token");
    await page.waitForSelector("#blocks tbody tr:not(.empty)", WAIT);
    await page.waitForSelector("#nodes tbody tr:not(.empty)", WAIT);
    seen.status = await page.textContent("#status");
    seen.node_id = await page.textContent("#node-id");
    seen.store = await page.textContent("#store");
    seen.config_state = await page.textContent("#config-state");
    seen.config_errors = await page.textContent("#config-errors");
    seen.limits = await page.evaluate(rows, "#limits");
    seen.nodes = await page.evaluate(rows, "#nodes");
    seen.blocks = await page.evaluate(rows, "#blocks");
    seen.counters_first_page = await page.evaluate(rows, "#counters");
    await page.screenshot({ path: screenshot, fullPage: true });

    const firstKey = await page.evaluate(() => document.querySelector("#counters tbody tr").dataset.key);
    await page.click(".pager:has(+ #counters) .next");
    await page.waitForFunction(
      (first) => {
        const shown = [...document.querySelectorAll("#counters tbody tr")].map((row) => row.dataset.key);
        return shown.length > 0 && !shown.includes(first);
      },
      firstKey,
      WAIT
    );
    seen.counters_second_page = await page.evaluate(rows, "#counters");
    await page.click(".pager:has(+ #counters) .first");

    const blockedRow = `#blocks tbody tr:has(td:text-is("remote_address=${blockedValue}"))`;
    await page.click(blockedRow + " button.reset");
    await page.waitForSelector(blockedRow, { state: "detached", ...WAIT });
    seen.blocks_after_reset = await page.evaluate(rows, "#blocks");
    seen.message_after_reset = await page.textContent("#message");

    // More traffic, and no reload: the page must show the newly blocked counter by itself.
    for (let i = 0; i < 6; i++) await check(trafficValue);
    const newlyBlocked = `#blocks tbody tr:has(td:text-is("remote_address=${trafficValue}"))`;
    await page.waitForSelector(newlyBlocked, WAIT);
    seen.newly_blocked = await page.evaluate(
      (value) => [...document.querySelectorAll("#blocks tbody tr")]
        .filter((row) => row.cells[1].textContent === "remote_address=" + value)
        .map((row) => [...row.cells].map((cell) => cell.textContent.trim())),
      trafficValue
    );
    seen.refreshes = Number(await page.getAttribute("#updated", "data-refreshes"));
  } catch (error) {
    seen.problems.push(String(error && error.stack ? error.stack : error));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + "\n");
}

main();
