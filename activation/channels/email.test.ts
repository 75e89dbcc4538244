// The email channel against real SMTP servers on loopback: trait values are escaped in the
// HTML part (and only there), `| raw` outputs a value as it is, and one deadline bounds the
// SMTP exchange even when the server answers a byte at a time.
import { createServer, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CampaignDefinition } from '../../schemas/campaign.ts';
import { change, type Mail, startSmtpServer } from '../../test/activation-peers.ts';
import type { SendRequest } from './channel.ts';
import { emailChannel } from './email.ts';

let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
afterAll(async () => {
  await smtp?.close();
});

function sendRequest(email: CampaignDefinition['email'], traits: Record<string, unknown>): SendRequest {
  const at = new Date().toISOString();
  return {
    campaign: {
      id: 'cmp_escape',
      workspaceId: 'ws',
      name: 'Escape test',
      segmentId: 'seg',
      on: 'enter',
      channel: 'email',
      email,
      status: 'active',
      version: 1,
      createdAt: at,
      updatedAt: at,
    },
    change: change('ws', 'seg', `p-${Math.random().toString(36).slice(2)}`, traits),
    sendKey: `sk-${Math.random().toString(36).slice(2)}`,
    recipient: String(traits.email),
    unsubscribeUrl: 'http://127.0.0.1:8081/v1/unsubscribe?token=t0k',
    nowMs: Date.now(),
  };
}

/** The decoded MIME parts of a received mail, by content type. */
function parts(mail: Mail): Map<string, string> {
  const boundary = /boundary="?([^";]+)"?/.exec(mail.headers.get('content-type') ?? '')?.[1];
  const out = new Map<string, string>();
  const chunks = boundary ? mail.raw.split(`--${boundary}`).slice(1, -1) : [mail.raw];
  for (const chunk of chunks) {
    const [head = '', ...rest] = chunk.replace(/^\r?\n/, '').split(/\r?\n\r?\n/);
    let body = rest.join('\n\n').replace(/\r?\n$/, '');
    const type = /content-type:\s*([^;\r\n]+)/i.exec(head)?.[1]?.trim() ?? '';
    const encoding = /content-transfer-encoding:\s*(\S+)/i.exec(head)?.[1]?.toLowerCase();
    if (encoding === 'quoted-printable')
      body = Buffer.from(
        body
          .replace(/=\r?\n/g, '')
          .replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
        'latin1',
      ).toString('utf8');
    else if (encoding === 'base64') body = Buffer.from(body.replace(/\s/g, ''), 'base64').toString('utf8');
    out.set(type, body);
  }
  return out;
}

/** An RFC 2047 header value (Q-encoded words, as nodemailer writes them) as text. */
function decodeHeader(value: string): string {
  return value.replace(/\?=\s+=\?/g, '?==?').replace(/=\?UTF-8\?Q\?([^?]*)\?=/gi, (_, q: string) =>
    Buffer.from(
      q
        .replace(/_/g, ' ')
        .replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    ).toString('utf8'),
  );
}

const HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>';

describe('HTML email escapes trait values', () => {
  it('escapes in the html part, leaves subject and text as they are, and honours | raw', async () => {
    const channel = emailChannel({ smtpUrl: smtp.url, from: 'Shop <news@shop.test>', timeoutMs: 5000 });
    try {
      const traits = { email: 'eve@example.com', name: HOSTILE, banner: '<b>Sale</b>' };
      const r = await channel.send(
        sendRequest(
          {
            subject: 'Hi {{ traits.name }}',
            text: 'Hello {{ traits.name }} {{ unsubscribe_url }}',
            html: '<p>Hello {{ traits.name }}</p>{{ traits.banner | raw }}<a href="{{ unsubscribe_url }}">unsubscribe</a>',
          },
          traits,
        ),
      );
      expect(r, r.error).toMatchObject({ ok: true });
      const mail = smtp.mails.find((m) => m.to.includes('eve@example.com'));
      expect(mail).toBeDefined();
      const byType = parts(mail!);
      const html = byType.get('text/html') ?? '';
      expect(html).toContain(
        '<p>Hello &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</p>',
      );
      expect(html).not.toContain('<script');
      expect(html).not.toContain('<img');
      // deliberately raw, and the template's own markup untouched
      expect(html).toContain('<b>Sale</b><a href="http://127.0.0.1:8081/v1/unsubscribe?token=t0k">');
      // plain-text parts are not HTML: no entities in them
      expect(byType.get('text/plain')).toContain(`Hello ${HOSTILE}`);
      expect(decodeHeader(mail!.headers.get('subject') ?? '')).toBe(`Hi ${HOSTILE}`);
    } finally {
      await channel.close?.();
    }
  });
});

describe('SMTP deadline', () => {
  const sockets = new Set<Socket>();
  afterEach(() => {
    for (const s of sockets) s.destroy();
  });

  /**
   * A minimal SMTP server that answers every command at once but trickles its final reply
   * to DATA a byte every 100 ms (each gap far inside the idle timeouts).
   */
  async function tricklingSmtp() {
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      socket.write('220 trickle ESMTP\r\n');
      let inData = false;
      let buffered = '';
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (;;) {
          if (inData) {
            const end = buffered.indexOf('\r\n.\r\n');
            if (end < 0) return;
            buffered = buffered.slice(end + 5);
            inData = false;
            const reply = `250 2.0.0 queued as ${'q'.repeat(40)}\r\n`;
            let i = 0;
            const timer = setInterval(() => {
              if (socket.destroyed || i >= reply.length) return clearInterval(timer);
              socket.write(reply[i++]!);
            }, 100);
            continue;
          }
          const nl = buffered.indexOf('\r\n');
          if (nl < 0) return;
          const line = buffered.slice(0, nl).toUpperCase();
          buffered = buffered.slice(nl + 2);
          if (line.startsWith('EHLO') || line.startsWith('HELO')) socket.write('250 trickle\r\n');
          else if (line.startsWith('DATA')) {
            inData = true;
            socket.write('354 go ahead\r\n');
          } else if (line.startsWith('QUIT')) socket.end('221 bye\r\n');
          else socket.write('250 ok\r\n');
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    return {
      url: `smtp://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  it('gives up at the deadline, retriable, when the server trickles its answer', async () => {
    const server = await tricklingSmtp();
    const channel = emailChannel({ smtpUrl: server.url, from: 'a@shop.test', timeoutMs: 1000 });
    try {
      const started = performance.now();
      const r = await channel.send(
        sendRequest({ subject: 'Hi', text: 'text' }, { email: 'slow@example.com' }),
      );
      const took = performance.now() - started;
      expect(r).toMatchObject({ ok: false, retriable: true, error: 'SMTP send timed out after 1000 ms' });
      // the trickled reply alone takes over 5 s
      expect(took).toBeLessThan(2500);
    } finally {
      await channel.close?.();
      for (const s of sockets) s.destroy();
      await server.close();
    }
  });
});
