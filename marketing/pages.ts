// The content of every marketing page. Prices, plan names and features come from the plan
// catalogue (api/plans.ts); the forms' fillable parts from api/web/slots.ts.
import { PER_PLAN } from '../api/config.ts'
import { PAID_PLANS, PLANS, SERVER_FEATURE, formatPrice, planServerType, serverHardware, type Plan } from '../api/plans.ts'
import { PROGRESS_TEXT } from '../api/web/buyer-text.ts'
import { adminSection, describedBy, escapeHtml, fieldError, fieldValue, formAlert, messageBlock, planInput, progressBlock, welcomeHeading } from '../api/web/slots.ts'
import { CHECKOUT_RETURN_FILE, NOT_FOUND_FILE, SITE_PAGES } from '../api/web/site-pages.ts'
import { typedCookie } from '../api/web/typed-values.ts'
import { planCardId, type PageSpec, type SiteContext } from './layout.ts'

export const DEFAULT_PLAN = 'standard'

function fileOf (path: string): string {
  const page = SITE_PAGES.find((p) => p.path === path)
  if (page === undefined) throw new Error(`no site page at ${path}`)
  return page.file
}

/** "<name>.ctfhive.us" in the catalogue's features follows BASE_DOMAIN. */
function feature (text: string, ctx: SiteContext): string {
  return escapeHtml(text.replace('<name>.ctfhive.us', `your-event.${ctx.baseDomain}`))
}

/**
 * A plan's features as its card lists them: the hardware is that of the server LINODE_PLAN
 * gives the plan, and a type we have no figures for gets no line rather than a wrong one.
 */
function cardFeatures (plan: Plan, ctx: SiteContext): string[] {
  return plan.features.flatMap((f) => {
    if (f !== SERVER_FEATURE) return [feature(f, ctx)]
    const hardware = serverHardware(planServerType(plan.slug, ctx.linodePlan))
    return hardware === undefined ? [] : [escapeHtml(hardware)]
  })
}

function mailLink (box: string, ctx: SiteContext): string {
  const address = escapeHtml(`${box}@${ctx.contactDomain}`)
  return `<a href="mailto:${address}">${address}</a>`
}

function perMonth (plan: Plan): string {
  return `${formatPrice(plan.amount ?? 0)} a month`
}

function graceText (hours: number): string {
  if (hours === 0) return 'right away'
  if (hours % 24 === 0) return `${hours / 24} day${hours === 24 ? '' : 's'} later`
  return `${hours} hours later`
}

function home (ctx: SiteContext): PageSpec {
  const cheapest = Math.min(...PAID_PLANS.map((p) => p.amount ?? Infinity))
  return {
    path: '/',
    file: fileOf('/'),
    title: 'CTFHive: hosted CTFd servers for your capture-the-flag event',
    description: `Run your capture-the-flag event on your own CTFd server with its own address and HTTPS, ready minutes after checkout. Plans from ${formatPrice(cheapest)} a month.`,
    main: `
<section class="hero">
  <div class="wrap">
    <h1>Your own CTF platform, live in minutes</h1>
    <p class="lead">CTFHive runs a dedicated <abbr title="the open-source capture-the-flag platform">CTFd</abbr> server for your event, with its own address and an HTTPS certificate, so you can spend your time on challenges instead of servers.</p>
    <p class="actions"><a class="button button-honey" href="/register">Start your CTF</a> <a class="button button-ghost" href="/pricing">See plans and prices</a></p>
    <p class="small">Plans from ${formatPrice(cheapest)} a month. Cancel any time.</p>
  </div>
</section>
<section class="wrap section" aria-labelledby="who">
  <h2 id="who">Who it is for</h2>
  <ul class="cards">
    <li class="card"><h3>Teachers and clubs</h3><p>A private competition for a class, a student club or a practice night, without asking IT for a server.</p></li>
    <li class="card"><h3>Conferences and communities</h3><p>A public event with a scoreboard hundreds of players refresh at the same moment.</p></li>
    <li class="card"><h3>Security teams</h3><p>Internal training and hiring challenges on a server that belongs to you alone.</p></li>
  </ul>
</section>
<section class="wrap section" aria-labelledby="how">
  <h2 id="how">How it works</h2>
  <ol class="how">
    <li><strong>Pick a plan and pay.</strong> Checkout is handled by Stripe; we never see your card.</li>
    <li><strong>We build your server.</strong> It gets its own address, like <code>your-event.${escapeHtml(ctx.baseDomain)}</code>, and an HTTPS certificate.</li>
    <li><strong>Open your CTF.</strong> A page follows the setup step by step and links to your CTF the moment it is live.</li>
    <li><strong>Run your event.</strong> Add challenges, invite players, watch the scoreboard. Cancel whenever you are done.</li>
  </ol>
</section>
<section class="wrap section" aria-labelledby="what">
  <h2 id="what">What you get</h2>
  <ul class="ticks">
    <li>A dedicated server per event, never shared with another customer</li>
    <li>CTFd with its database and cache, on a server that installs security updates every day</li>
    <li>HTTPS from day one, at an address under ${escapeHtml(ctx.baseDomain)}</li>
    <li>A tamper-evident record of every step we take on your server</li>
  </ul>
  <p><a href="/pricing">Compare the plans</a> or <a href="/docs/">read how the platform works</a>.</p>
</section>`
  }
}

function planCard (plan: Plan, ctx: SiteContext): string {
  const features = cardFeatures(plan, ctx).map((f) => `<li>${f}</li>`).join('')
  const popular = plan.slug === DEFAULT_PLAN
  const price = plan.amount === null
    ? '<p class="price"><span class="amount">Custom</span> <span class="per">pricing</span></p>'
    : `<p class="price"><span class="amount">${formatPrice(plan.amount)}</span> <span class="per">a month</span></p>`
  const cta = plan.ctaKind === 'checkout'
    ? `<a class="button${popular ? ' button-honey' : ''}" href="/register?plan=${plan.slug}" data-plan="${plan.slug}">Choose ${escapeHtml(plan.name)}</a>`
    : '<a class="button button-ghost-dark" href="/contact#sales">Talk to our team</a>'
  return `<li class="plan${popular ? ' plan-popular' : ''}" id="${planCardId(plan)}">
    <h2>${escapeHtml(plan.name)}</h2>${popular ? '<p class="badge">Most popular</p>' : ''}
    ${price}
    <p>${escapeHtml(plan.tagline)}</p>
    <ul class="ticks">${features}</ul>
    ${cta}
  </li>`
}

function pricing (ctx: SiteContext): PageSpec {
  // Only per-plan servers change with the plan; with one type for every plan, nothing resizes.
  const planChange = ctx.linodePlan === PER_PLAN
    ? `To change plans later, write to ${mailLink('billing', ctx)}: your server is moved to the new plan's size, which restarts it once.`
    : `To change plans later, write to ${mailLink('billing', ctx)}.`
  const names = PAID_PLANS.map((p) => `${p.name} ${formatPrice(p.amount ?? 0)}`).join(', ')
  return {
    path: '/pricing',
    file: fileOf('/pricing'),
    title: 'Plans and prices',
    description: `Monthly plans for a hosted CTFd server: ${names} a month, or Enterprise on request. Every plan is a dedicated server with HTTPS.`,
    main: `
<div class="wrap section">
  <h1>Plans and prices</h1>
  <p class="lead">Every plan is a dedicated CTFd server at its own address, billed monthly in US dollars. Cancel any time.</p>
  <ul class="plans">
    ${PLANS.map((p) => planCard(p, ctx)).join('\n    ')}
  </ul>
</div>
<section class="wrap section" aria-labelledby="faq">
  <h2 id="faq">Questions</h2>
  <dl class="faq">
    <dt>Which plan do I need?</dt>
    <dd>Count your players: ${PAID_PLANS.map((p) => `${escapeHtml(p.name)} is made for ${escapeHtml((p.features[0] ?? '').toLowerCase())}`).join(', ')}. ${planChange}</dd>
    <dt>How do I pay?</dt>
    <dd>By card through Stripe Checkout. Stripe sends the receipts; we never see your card number.</dd>
    <dt>How fast is my CTF ready?</dt>
    <dd>Setup starts the moment your payment is confirmed and takes a few minutes. A page follows each step and links to your CTF when it is live.</dd>
    <dt>What happens when I cancel?</dt>
    <dd>Your CTF keeps running until the end of the period you paid for. Its server and data are deleted ${graceText(ctx.graceHours)}, so export anything you want to keep.</dd>
  </dl>
</section>`
  }
}

function about (ctx: SiteContext): PageSpec {
  return {
    path: '/about',
    file: fileOf('/about'),
    title: 'About us',
    description: 'Why CTFHive exists and how it runs your capture-the-flag event: one dedicated CTFd server per customer, HTTPS at your own address, and an audited setup.',
    main: `
<div class="wrap section prose">
  <h1>About CTFHive</h1>
  <p class="lead">Running a capture-the-flag event should be about the challenges. Keeping a server up during the busiest hour of the event should be our problem, not yours.</p>
  <h2>Why we built it</h2>
  <p>Most CTF organisers lose a weekend to servers: a machine to rent, Docker to install, a database, a domain name, a certificate, and then the nervous wait for the start of the event. CTFHive sets up the server, the software, the address and the certificate in the minutes after checkout.</p>
  <h2>How your CTF runs</h2>
  <p>Each customer gets a dedicated virtual server. It runs <a href="https://ctfd.io/">CTFd</a>, the open-source CTF platform, with its own database and cache, behind a web server that holds a Let's Encrypt certificate for your address under ${escapeHtml(ctx.baseDomain)}. No other customer shares your server.</p>
  <p>CTFd's first-run setup is completed on the server itself before it goes online, so nobody can claim your fresh instance before you do.</p>
  <h2>What we keep a record of</h2>
  <p>Every step we take on your server, from creating it to deleting it, is written to a tamper-evident log: each entry is sealed together with the one before it, so an edited or missing entry shows.</p>
  <h2>Open documentation</h2>
  <p>How the platform works, from billing to provisioning, is described in our <a href="/docs/">documentation</a>.</p>
</div>`
  }
}

/**
 * What the control plane keeps about a buyer, and for how long. Each claim is the code's:
 * the tenant row (api/store/store.ts), the stored Stripe events (storablePayload in
 * api/billing/events.ts), `ctfhive prune` and `erase` (api/tenants/retention.ts), the setup
 * (serverSpecFor, cloud-init), the audit chain's details, the logs (api/logger.ts, the
 * Caddyfile) and the form's cookie (api/web/typed-values.ts).
 */
function privacy (ctx: SiteContext): PageSpec {
  const cookie = typedCookie(ctx.publicBaseUrl).name
  return {
    path: '/privacy',
    file: fileOf('/privacy'),
    title: 'Privacy',
    description: 'What CTFHive keeps about you when you start a CTF, who else handles it, how long we keep it, our one cookie, and how to see, correct or erase it.',
    main: `
<div class="wrap section prose">
  <h1>Privacy</h1>
  <p class="lead">We keep what we need to set up your CTF, bill for it and run it. This page says what that is, who else sees it and when we delete it.</p>
  <h2 id="what-we-keep">What we keep about you</h2>
  <p>When you start a CTF, we store:</p>
  <ul>
    <li>the name of your event, and your CTF's address made from it (like <code>spring-ctf-1a2b3c.${escapeHtml(ctx.baseDomain)}</code>);</li>
    <li>your email: the one you give on the sign-up form, or the one you type on Stripe's checkout page;</li>
    <li>your plan, Stripe's ids for you and your subscription, where your billing and your server stand, and the dates of each step (order, payment, setup, cancellation).</li>
  </ul>
  <p>Your email is also the email of your CTF's administrator account, and it is how we know that a message about your order comes from you.</p>
  <h2 id="card">Your card</h2>
  <p>You enter your card on Stripe's checkout page, not on ours. We never see your card number.</p>
  <h2 id="processors">Who else handles it</h2>
  <ul>
    <li><strong>Stripe</strong> takes your payments and sends your receipts. What you enter on its checkout page is kept by Stripe.</li>
    <li><strong>Linode</strong> (Akamai) hosts your CTF's server and the DNS record of its address. When we set the server up, we give it your event's name and your email, for CTFd's administrator account.</li>
  </ul>
  <h2 id="stripe-messages">Messages from Stripe</h2>
  <p>Stripe tells us when you pay, when a payment fails and when your subscription changes. We keep each message, to act on it only once and as the history of your order. Our copy keeps your email, but not your name, phone or postal address, tax ids, shipping details or custom fields.</p>
  <h2 id="how-long">How long we keep it</h2>
  <ul>
    <li><strong>Messages from Stripe:</strong> we remove their content after 90 days. A line saying that each came and what it did stays.</li>
    <li><strong>An order never paid for</strong> (a checkout you left, or one whose payment never went through): we remove it, with its event name and email, after 30 days.</li>
    <li><strong>Your CTF's server and its data:</strong> when your subscription ends, they are deleted ${graceText(ctx.graceHours)}, so export anything you want to keep.</li>
    <li><strong>Your order</strong> (event name, email, plan, dates): kept after you cancel, as our record of what we sold, until you ask us to erase it.</li>
  </ul>
  <h2 id="audit-log">The record of our work on your server</h2>
  <p>Every step we take on your server is written to a tamper-evident log that cannot be edited. It holds your CTF's address, its plan and the ids of your order, subscription and server, not your event's name or your email. Because no entry can change, your CTF's address stays in it, even after an erasure.</p>
  <h2 id="logs">Logs</h2>
  <p>Each request to this site is logged with the page asked for, your IP address and browser, the time and our answer. Your email never appears in them: the sign-up form never puts it in a page's address. We keep these logs to run and secure the service, and rotate them: the oldest lines are dropped as new ones are written.</p>
  <p>To stop floods of sign-ups, we count the checkouts started from each IP address in one-minute windows; old counts are deleted as new ones are made.</p>
  <h2 id="cookies">Cookies</h2>
  <p>One, and only when you need it: if the sign-up form comes back with an error, the cookie <code>${escapeHtml(cookie)}</code> keeps what you typed (event name and email) so you need not type it again. It lasts five minutes, cannot be read by scripts, and is cleared as soon as the form shows again.</p>
  <p>No analytics, no advertising, and nothing loaded from other sites.</p>
  <h2 id="your-rights">Seeing, correcting or erasing your data</h2>
  <p>Write to ${mailLink('support', ctx)} from the address you used at checkout, and say what you want: a copy of what we hold about you, a correction, or an erasure. We answer every message within one business day.</p>
  <p>We erase an order once its subscription has ended and its server is deleted: your event's name and your email are removed, and so are our copies of Stripe's messages. What stays records the sale, not you: our ids and Stripe's, the plan, the dates, and your CTF's address. Stripe keeps its own records of your payments.</p>
</div>`
  }
}

function contact (ctx: SiteContext): PageSpec {
  return {
    path: '/contact',
    file: fileOf('/contact'),
    title: 'Contact',
    description: 'Reach the CTFHive team: sales and Enterprise plans, help with a running CTF, and billing questions. We answer within one business day.',
    main: `
<div class="wrap section">
  <h1>Contact us</h1>
  <p class="lead">We answer every message within one business day.</p>
  <ul class="cards">
    <li class="card" id="sales"><h2>Sales and Enterprise</h2><p>Custom domains, single sign-on, dedicated CPUs or an uptime agreement: tell us about your event.</p><p>${mailLink('sales', ctx)}</p></li>
    <li class="card" id="support"><h2>Help with your CTF</h2><p>Something wrong with your server or its setup? Include the order number from your welcome page.</p><p>${mailLink('support', ctx)}</p></li>
    <li class="card" id="billing"><h2>Billing</h2><p>Change your plan, update your card or cancel. Write from the address you used at checkout.</p><p>${mailLink('billing', ctx)}</p></li>
  </ul>
</div>`
  }
}

function login (ctx: SiteContext): PageSpec {
  const domain = escapeHtml(ctx.baseDomain)
  return {
    path: '/login',
    file: fileOf('/login'),
    title: 'Sign in to your CTF',
    description: 'Go to the sign-in page of your CTFHive event: enter its address and we take you there. For your plan or billing, email our billing team.',
    noindex: true,
    main: `
<div class="wrap section narrow">
  <h1>Sign in to your CTF</h1>
  <p class="lead">Each CTF has its own address. Enter yours and we take you to its sign-in page.</p>
  <form class="form" id="login-form" method="get" action="/login/go">
    ${formAlert()}
    <div class="field">
      <label for="address">Your CTF's address</label>
      <div class="with-suffix"><input ${fieldValue('address')} type="text" required maxlength="253" autocomplete="url" autocapitalize="none" spellcheck="false" placeholder="spring-ctf-1a2b3c" ${describedBy('address')}><span class="suffix" aria-hidden="true">.${domain}</span></div>
      <p class="hint" id="address-hint">The name before .${domain}, as shown on your welcome page. A full address like https://spring-ctf-1a2b3c.${domain}/ works too.</p>
      ${fieldError('address')}
    </div>
    <button class="button" type="submit">Go to sign-in</button>
  </form>
  <section class="section-tight" aria-labelledby="billing-help">
    <h2 id="billing-help">Manage your plan and billing</h2>
    <p>To change your plan, update your card or cancel, write to ${mailLink('billing', ctx)} from the address you used at checkout, or see the <a href="/contact">contact page</a>.</p>
  </section>
</div>`
  }
}

function register (ctx: SiteContext): PageSpec {
  const options = PAID_PLANS.map((plan) => `
        <div class="choice">${planInput(plan.slug, plan.slug === DEFAULT_PLAN)}<label for="plan-${plan.slug}"><span class="choice-name">${escapeHtml(plan.name)}</span> <span class="choice-price">${perMonth(plan)}</span> <span class="choice-note">${escapeHtml(plan.tagline)}</span></label></div>`).join('')
  // The event's name is no organisation of the buyer's (autocomplete="organization" would fill
  // in their company, which then becomes the CTF's address): autocomplete="off".
  return {
    path: '/register',
    file: fileOf('/register'),
    title: 'Start your CTF',
    description: 'Create your CTFHive event: name it, choose a plan and pay securely with Stripe. Your CTFd server is set up minutes after checkout.',
    noindex: true,
    main: `
<div class="wrap section narrow">
  <h1>Start your CTF</h1>
  <p class="lead">Three details, then a secure Stripe checkout. Setup starts the moment your payment is confirmed.</p>
  <form class="form" id="register-form" method="post" action="/billing/checkout">
    ${formAlert()}
    <div class="field">
      <label for="name">Event name</label>
      <input ${fieldValue('name')} type="text" required pattern=".*\\S.*" title="The name of your event, not only spaces" maxlength="80" autocomplete="off" ${describedBy('name')}>
      <p class="hint" id="name-hint">It becomes your CTF's address, like spring-ctf-1a2b3c.${escapeHtml(ctx.baseDomain)}.</p>
      ${fieldError('name')}
    </div>
    <div class="field">
      <label for="email">Email</label>
      <input ${fieldValue('email')} type="email" required maxlength="254" autocomplete="email" ${describedBy('email')}>
      <p class="hint" id="email-hint">For your receipts and your CTF's administrator account. <a href="/privacy">How we keep it</a>.</p>
      ${fieldError('email')}
    </div>
    <fieldset class="field" ${describedBy('plan')}>
      <legend>Plan</legend>${options}
      <p class="hint" id="plan-hint">Billed monthly; cancel any time. Need more? <a href="/contact#sales">Enterprise plans</a> are set up with our team.</p>
      ${fieldError('plan')}
    </fieldset>
    <div class="form-submit">
      <button class="button button-honey" type="submit" id="register-submit">Continue to payment</button>
      <p class="form-status" id="register-status" role="status"></p>
    </div>
  </form>
</div>`
  }
}

function welcome (): PageSpec {
  return {
    path: '/welcome',
    file: fileOf('/welcome'),
    // The server and the script change both with the order's state (welcomeHeading).
    title: PROGRESS_TEXT.checking.heading,
    description: 'Follow the setup of your new CTFHive server step by step: payment, server, address and certificate, until your CTF is live.',
    noindex: true,
    main: `
<div class="wrap section narrow">
  ${welcomeHeading()}
  ${progressBlock({ key: 'checking', done: 0, final: false })}
  ${adminSection()}
  <p class="small">Keep the link to this page: it is how you come back to your order. Questions? <a href="/contact#support">Contact support</a>.</p>
  <noscript><p class="small">This page updates by itself when JavaScript is on; without it, reload the page to see the latest step.</p></noscript>
</div>`
  }
}

function notFound (): PageSpec {
  return {
    path: '/404',
    file: NOT_FOUND_FILE,
    title: 'Page not found',
    description: 'This page does not exist on the CTFHive site. Start from the home page, see the plans, or read the documentation.',
    noindex: true,
    noCanonical: true,
    main: `
<div class="wrap section narrow">
  <h1>Page not found</h1>
  <p class="lead">There is no page at this address. It may have moved, or the link may be mistyped.</p>
  <ul class="ticks">
    <li><a href="/">Home page</a></li>
    <li><a href="/pricing">Plans and prices</a></li>
    <li><a href="/docs/">Documentation</a></li>
    <li><a href="/login">Sign in to your CTF</a></li>
  </ul>
</div>`
  }
}

/** The frame of what /billing/success says when it cannot take the buyer on to their order. */
function checkoutReturn (): PageSpec {
  return {
    path: '/billing/success',
    file: CHECKOUT_RETURN_FILE,
    title: 'Back from checkout',
    description: 'Where a CTFHive buyer lands back from Stripe Checkout when their order cannot be shown yet, with the way on to it.',
    noindex: true,
    noCanonical: true,
    main: messageBlock()
  }
}

export function sitePages (ctx: SiteContext): PageSpec[] {
  return [home(ctx), pricing(ctx), about(ctx), contact(ctx), privacy(ctx), login(ctx), register(ctx), welcome(), notFound(), checkoutReturn()]
}
