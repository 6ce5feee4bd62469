#!/usr/bin/env node
// Drives Debian's headless Chromium (playwright-core, executablePath /usr/bin/chromium) through one scenario
// of the Airflow UI and prints what it saw as one JSON object on stdout; tests/browser/*.py assert on it.
//
//   node driver.js <scenario> '<json config>'
//
// config: {baseUrl, username, password, artifacts (a directory for the screenshots), chromium (optional),
// ...the scenario's own keys}. Scenarios: login, connection_form, hybrid_page.
// Output: {scenario, ok, observed, screenshots: [paths]} or, when a step could not be done,
// {scenario, ok: false, step, error, url, text (the page's visible text, shortened), screenshots} with exit 1.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const STEP_TIMEOUT = 60000;

class Run {
  constructor(scenario, config) {
    this.scenario = scenario;
    this.config = config;
    this.screenshots = [];
    this.step = 'start';
    fs.mkdirSync(config.artifacts, { recursive: true });
  }

  // the whole page, or only `element` (all of it, also the part below the fold of a dialog)
  async shot(page, name, element) {
    const file = path.join(this.config.artifacts, `${String(this.screenshots.length + 1).padStart(2, '0')}-${name}.png`);
    await (element ? element.screenshot({ path: file }) : page.screenshot({ path: file, fullPage: true }));
    this.screenshots.push(file);
    return file;
  }
}

async function login(run, page, password, start = '/') {
  const { baseUrl, username } = run.config;
  run.step = `open ${start} without a session (expecting the login page)`;
  await page.goto(`${baseUrl}${start}`);
  await page.getByLabel('Username').waitFor();
  const loginUrl = page.url();
  await run.shot(page, 'login-form');
  run.step = 'fill and submit the login form';
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  return loginUrl;
}

async function loggedIn(run, page, start = '/') {
  const loginUrl = await login(run, page, run.config.password, start);
  run.step = 'wait to leave the login page';
  await page.waitForURL((url) => !url.pathname.startsWith('/auth/'));
  await page.waitForLoadState('networkidle');
  return loginUrl;
}

const scenarios = {
  // The login form: a wrong password is refused on the page, the right one opens the UI with a session.
  async login(run, page) {
    const observed = {};
    await login(run, page, `${run.config.password}-wrong`);
    observed.menusStatusBeforeLogin = await page.evaluate(async () => (await fetch('/ui/auth/menus')).status);
    run.step = 'wait for the refusal of a wrong password';
    const refusal = page.locator('.chakra-alert__root').filter({ hasNotText: 'Simple auth manager' });
    await refusal.first().waitFor();
    observed.refusal = (await refusal.first().innerText()).trim();
    observed.urlAfterWrongPassword = page.url();
    await run.shot(page, 'wrong-password');

    observed.loginUrl = await loggedIn(run, page);
    observed.urlAfterLogin = page.url();
    run.step = 'read the home page';
    await page.getByRole('heading', { name: 'Welcome' }).waitFor();
    observed.headings = await page.getByRole('heading').allInnerTexts();
    observed.cookies = (await page.context().cookies()).map((c) => c.name);
    // the UI's own session: its REST calls carry the login's token
    const me = await page.evaluate(async () => {
      const response = await fetch('/ui/auth/menus');
      return { status: response.status, body: response.ok ? await response.json() : await response.text() };
    });
    observed.menusStatus = me.status;
    observed.menus = me.body;
    await run.shot(page, 'logged-in');
    return observed;
  },

  // Admin > Connections > Add Connection, type chosen by its label: the form's field labels.
  async connection_form(run, page) {
    const { typeLabel } = run.config;
    await loggedIn(run, page);
    run.step = 'open Admin > Connections';
    await page.getByRole('button', { name: 'Admin' }).click();
    await page.getByRole('menuitem', { name: 'Connections' }).click();
    await page.waitForURL((url) => url.pathname === '/connections');
    run.step = 'open the Add Connection form';
    await page.getByRole('button', { name: 'Add Connection' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Add Connection' }).waitFor();
    run.step = `pick the connection type ${JSON.stringify(typeLabel)}`;
    const typeBox = dialog.getByRole('combobox');
    await typeBox.fill(typeLabel);
    const options = page.getByRole('option');
    await options.first().or(page.getByText('No options', { exact: true })).waitFor();
    const observed = { typeOptions: await options.allInnerTexts() };
    const exact = options.filter({ hasText: new RegExp(`^${escapeRegExp(typeLabel)}$`) });
    if ((await exact.count()) === 0) {
      await run.shot(page, 'connection-type-options');
      return observed; // the test says which option it expected among these
    }
    await exact.first().click();
    run.step = 'wait for the form of the chosen type';
    await dialog.getByText('Standard Fields').waitFor();
    await page.waitForLoadState('networkidle');
    const typeField = dialog.getByRole('group').filter({ has: page.getByText('Connection Type') });
    observed.typeFieldText = (await typeField.first().innerText()).split('\n').map((line) => line.trim());
    // one section open at a time (an accordion): open each, read its visible fields, take a screenshot
    observed.sections = {};
    for (const [name, slug] of [['Standard Fields', 'standard-fields'], ['Extra Fields', 'extra-fields']]) {
      run.step = `open the ${name} section`;
      const trigger = dialog.locator('[data-part="item-trigger"]').filter({ hasText: new RegExp(`^${name}$`) });
      if ((await trigger.count()) === 0) {
        observed.sections[name] = null;
        continue;
      }
      if ((await trigger.getAttribute('aria-expanded')) !== 'true') await trigger.click();
      const region = page.locator(`[id="${await trigger.getAttribute('aria-controls')}"]`);
      await region.waitFor({ state: 'visible' });
      await region.evaluate((el) => Promise.all(el.getAnimations({ subtree: true }).map((a) => a.finished)));
      observed.sections[name] = await region.locator('label').evaluateAll((labels) =>
        labels
          .filter((label) => label.checkVisibility() && label.innerText.trim())
          .map((label) => {
            const input = label.htmlFor ? document.getElementById(label.htmlFor) : label.querySelector('input');
            return {
              label: label.innerText.replace(/\s*\*\s*$/, '').trim(),
              name: input ? input.getAttribute('name') : null,
              placeholder: input ? input.getAttribute('placeholder') : null,
            };
          }),
      );
      await run.shot(page, `connection-form-${slug}`, dialog);
    }
    return observed;
  },

  // Browse > Hybrid lake, or `path` opened without a session (through the login page and back): every
  // data-testid element's text and data-* values, in the page and in its frames (the page may be embedded).
  async hybrid_page(run, page) {
    const { navLabel, path: pagePath, waitFor } = run.config;
    const observed = {};
    if (pagePath) {
      observed.loginUrl = await loggedIn(run, page, pagePath);
    } else {
      await loggedIn(run, page);
      run.step = `open Browse > ${navLabel}`;
      await page.getByRole('button', { name: 'Browse' }).click();
      await page.getByRole('menuitem', { name: navLabel }).click();
    }
    run.step = `wait for data-testid=${JSON.stringify(waitFor)} on the page`;
    const frame = await frameWith(page, `[data-testid="${waitFor}"]`);
    await page.waitForLoadState('networkidle');
    observed.url = page.url();
    observed.frameUrl = frame.url();
    observed.title = await frame.title();
    observed.testids = await frame.locator('[data-testid]').evaluateAll((nodes) =>
      nodes.map((node) => ({
        testid: node.getAttribute('data-testid'),
        text: node.innerText.trim(),
        data: Object.fromEntries(Object.entries(node.dataset).filter(([key]) => key !== 'testid')),
        href: node.getAttribute('href'),
        items: [...node.querySelectorAll('[data-path]')].map((item) => ({
          data: { ...item.dataset }, text: item.innerText.trim(),
        })),
        visible: node.offsetParent !== null || node.getClientRects().length > 0,
      })),
    );
    await run.shot(page, 'hybrid-page');
    return observed;
  },
};

async function frameWith(page, selector) {
  const deadline = Date.now() + STEP_TIMEOUT;
  for (;;) {
    for (const frame of page.frames()) {
      if ((await frame.locator(selector).count().catch(() => 0)) > 0) return frame;
    }
    if (Date.now() > deadline) throw new Error(`no frame of ${page.url()} has ${selector} after ${STEP_TIMEOUT} ms`);
    await page.waitForTimeout(250);
  }
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function main() {
  const [scenario, configText] = process.argv.slice(2);
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios)}`);
  const run = new Run(scenario, JSON.parse(configText));
  const args = typeof process.getuid === 'function' && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: run.config.chromium || '/usr/bin/chromium', args });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(STEP_TIMEOUT);
  let result;
  try {
    const observed = await scenarios[scenario](run, page);
    result = { scenario, ok: true, observed, screenshots: run.screenshots };
  } catch (error) {
    await run.shot(page, 'failure').catch(() => {});
    const text = await page.locator('body').innerText().catch(() => '');
    result = {
      scenario, ok: false, step: run.step, error: String(error.message || error).split('\n')[0],
      url: page.url(), text: text.slice(0, 2000), screenshots: run.screenshots,
    };
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ ok: false, step: 'launch', error: String(error.stack || error) })}\n`);
  process.exitCode = 2;
});
