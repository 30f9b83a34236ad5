// POST a body block-wise with node-coap 1.5.0, which sends Block1 without Size1 (RFC 7959
// allows it); prints the final response code, e.g. "4.08".
// usage: node block1-no-size1.js URL BYTES
const coap = require('coap');
const url = new URL(process.argv[2]);
const size = parseInt(process.argv[3], 10);
const body = Buffer.from('{"k":"' + 'x'.repeat(size - 8) + '"}');
const req = coap.request({
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: parseInt(url.port, 10),
    pathname: url.pathname,
    method: 'POST',
    confirmable: true,
});
req.setOption('Block1', Buffer.of(0x06)); // 1024-byte blocks, as node-coap is told to
req.on('response', (res) => {
    console.log(res.code + ' ' + res.payload.toString());
    process.exit(0);
});
req.on('error', (err) => {
    console.log('error ' + err.message);
    process.exit(1);
});
req.end(body);
setTimeout(() => { console.log('timeout'); process.exit(2); }, 20000);
