#include "source/common/tls/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/tls/client_hello_writer.h"

namespace mcproxy::tls {
namespace {

// A real ClientHello, as OpenSSL's client writes it, split into TLS records the way OpenSSL
// framed them.
std::string opensslClientHello(const std::string& sni, const std::vector<std::string>& alpn,
                               size_t padding_bytes = 0) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  if (padding_bytes > 0) {
    // A large custom extension makes OpenSSL write a ClientHello of several records.
    static size_t s_padding = 0;
    s_padding = padding_bytes;
    SSL_CTX_add_client_custom_ext(
        ctx.get(), 0xfe01,
        [](SSL*, unsigned, const unsigned char** out, size_t* outlen, int*, void*) -> int {
          static std::string blob;
          blob.assign(s_padding, 'p');
          *out = reinterpret_cast<const unsigned char*>(blob.data());
          *outlen = blob.size();
          return 1;
        },
        nullptr, nullptr, nullptr, nullptr);
  }
  return writeClientHello(sni, alpn, ctx.get());
}

// Re-frames the handshake bytes of `records` into records of at most `fragment` bytes each.
std::string refragment(const std::string& records, size_t fragment) {
  std::string handshake;
  for (size_t off = 0; off + 5 <= records.size();) {
    const size_t len =
        (static_cast<uint8_t>(records[off + 3]) << 8) | static_cast<uint8_t>(records[off + 4]);
    handshake += records.substr(off + 5, len);
    off += 5 + len;
  }
  std::string out;
  for (size_t off = 0; off < handshake.size(); off += fragment) {
    const size_t len = std::min(fragment, handshake.size() - off);
    out +=
        std::string{0x16, 0x03, 0x01, static_cast<char>(len >> 8), static_cast<char>(len & 0xff)};
    out += handshake.substr(off, len);
  }
  return out;
}

// Hand-built ClientHello parts, for the cases OpenSSL never writes.
std::string u16(size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

std::string extension(uint16_t type, const std::string& body) {
  return u16(type) + u16(body.size()) + body;
}

std::string sniExtension(const std::string& name) {
  const std::string entry = std::string(1, '\0') + u16(name.size()) + name;
  return extension(0, u16(entry.size()) + entry);
}

std::string clientHelloRecord(const std::string& extensions, bool with_extensions = true) {
  std::string body = u16(0x0303) + std::string(32, 'r') + std::string(1, '\0') + u16(2) +
                     u16(0x1301) + std::string{1, 0};
  if (with_extensions) body += u16(extensions.size()) + extensions;
  std::string handshake = std::string{0x01, static_cast<char>(body.size() >> 16),
                                      static_cast<char>((body.size() >> 8) & 0xff),
                                      static_cast<char>(body.size() & 0xff)} +
                          body;
  return std::string{0x16, 0x03, 0x01} + u16(handshake.size()) + handshake;
}

ParseResult parse(const std::string& bytes, ClientHelloInfo& info, size_t max = 16384) {
  return parseClientHello(bytes, max, info);
}

TEST(ClientHelloTest, RealClientHelloGivesSniAndAlpn) {
  const std::string hello = opensslClientHello("Www.Example.TEST", {"h2", "http/1.1"});
  ClientHelloInfo info;
  ASSERT_EQ(parse(hello, info).status, ParseStatus::kDone);
  EXPECT_EQ(info.server_name, "www.example.test");  // lower-cased
  EXPECT_EQ(info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(info.record_bytes, hello.size());
}

TEST(ClientHelloTest, NoSniIsDoneWithEmptyName) {
  ClientHelloInfo info;
  ASSERT_EQ(parse(opensslClientHello("", {}), info).status, ParseStatus::kDone);
  EXPECT_EQ(info.server_name, "");
  EXPECT_TRUE(info.alpn.empty());
}

TEST(ClientHelloTest, EveryPrefixNeedsMoreData) {
  const std::string hello = opensslClientHello("a.test", {"h2"});
  for (size_t len = 0; len < hello.size(); ++len) {
    ClientHelloInfo info;
    EXPECT_EQ(parse(hello.substr(0, len), info).status, ParseStatus::kNeedMoreData) << len;
  }
}

TEST(ClientHelloTest, HandshakeSpreadOverManySmallRecords) {
  const std::string hello = opensslClientHello("multi.record.test", {"h2"});
  for (size_t fragment : {1u, 7u, 64u, 100u}) {
    const std::string records = refragment(hello, fragment);
    ClientHelloInfo info;
    ASSERT_EQ(parse(records, info).status, ParseStatus::kDone) << fragment;
    EXPECT_EQ(info.server_name, "multi.record.test");
    EXPECT_EQ(info.record_bytes, records.size());
    // And the prefix of every record boundary still asks for more.
    ClientHelloInfo partial;
    EXPECT_EQ(parse(records.substr(0, records.size() - 1), partial).status,
              ParseStatus::kNeedMoreData);
  }
}

TEST(ClientHelloTest, LargeClientHelloOverSeveralRecordsFromOpenssl) {
  const std::string hello = opensslClientHello("big.test", {}, 20000);
  ASSERT_GT(hello.size(), 16384u + 5);  // OpenSSL needed two records
  ClientHelloInfo info;
  ASSERT_EQ(parse(hello, info, 65536).status, ParseStatus::kDone);
  EXPECT_EQ(info.server_name, "big.test");
}

TEST(ClientHelloTest, OversizedIsRejectedBeforeItArrives) {
  const std::string hello = opensslClientHello("big.test", {}, 20000);
  ClientHelloInfo info;
  // The handshake length says it cannot fit: refused from the first record's header on.
  EXPECT_EQ(parse(hello.substr(0, 9), info, 16384).status, ParseStatus::kTooLarge);
  EXPECT_EQ(parse(hello, info, 16384).status, ParseStatus::kTooLarge);
}

TEST(ClientHelloTest, BytesAfterTheClientHelloAreIgnored) {
  ClientHelloInfo info;
  const std::string hello = opensslClientHello("a.test", {});
  ASSERT_EQ(parse(hello + "early data follows", info).status, ParseStatus::kDone);
  EXPECT_EQ(info.record_bytes, hello.size());
}

TEST(ClientHelloTest, PlainTextIsNotTls) {
  ClientHelloInfo info;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\n", info).status, ParseStatus::kNotTls);
  EXPECT_EQ(parse("G", info).status, ParseStatus::kNotTls);
  EXPECT_EQ(parse(std::string{0x16, 0x02}, info).status, ParseStatus::kNotTls);
  // SSLv2-style hello
  EXPECT_EQ(parse(std::string{static_cast<char>(0x80), 0x2e, 0x01}, info).status,
            ParseStatus::kNotTls);
}

TEST(ClientHelloTest, GarbageAfterAValidHeaderIsMalformed) {
  ClientHelloInfo info;
  // Handshake record whose message is not a ClientHello (ServerHello = 2).
  EXPECT_EQ(parse(std::string{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}, info).status,
            ParseStatus::kMalformed);
  // Zero-length record.
  EXPECT_EQ(parse(std::string{0x16, 0x03, 0x01, 0x00, 0x00}, info).status, ParseStatus::kMalformed);
  // Record longer than TLS allows.
  EXPECT_EQ(parse(std::string{0x16, 0x03, 0x01, 0x48, 0x01}, info).status, ParseStatus::kMalformed);
  // A ChangeCipherSpec record in the middle of the ClientHello.
  const std::string hello = refragment(opensslClientHello("a.test", {}), 50);
  std::string broken = hello.substr(0, 55);
  broken += std::string{0x14, 0x03, 0x03, 0x00, 0x01, 0x01};
  EXPECT_EQ(parse(broken, info).status, ParseStatus::kMalformed);
}

TEST(ClientHelloTest, HandBuiltHelloParses) {
  ClientHelloInfo info;
  ASSERT_EQ(parse(clientHelloRecord(sniExtension("hand.test")), info).status, ParseStatus::kDone);
  EXPECT_EQ(info.server_name, "hand.test");
  ASSERT_EQ(parse(clientHelloRecord("", false), info).status, ParseStatus::kDone);
  EXPECT_EQ(info.server_name, "");
}

TEST(ClientHelloTest, TrailingDotIsDropped) {
  ClientHelloInfo info;
  ASSERT_EQ(parse(clientHelloRecord(sniExtension("a.test.")), info).status, ParseStatus::kDone);
  EXPECT_EQ(info.server_name, "a.test");
}

TEST(ClientHelloTest, ExtensionErrorsAreMalformed) {
  ClientHelloInfo info;
  // Extension length runs past the ClientHello.
  std::string overrun = u16(0) + u16(200) + "short";
  EXPECT_EQ(parse(clientHelloRecord(overrun), info).status, ParseStatus::kMalformed);
  // The same extension twice.
  EXPECT_EQ(parse(clientHelloRecord(sniExtension("a.test") + sniExtension("b.test")), info).status,
            ParseStatus::kMalformed);
  // Server name list length disagreeing with the extension length.
  EXPECT_EQ(
      parse(clientHelloRecord(extension(0, u16(50) + std::string(1, '\0') + u16(1) + "a")), info)
          .status,
      ParseStatus::kMalformed);
  // Characters no hostname has.
  EXPECT_EQ(parse(clientHelloRecord(sniExtension("a b.test")), info).status,
            ParseStatus::kMalformed);
  EXPECT_EQ(parse(clientHelloRecord(sniExtension(std::string("a\0b", 3))), info).status,
            ParseStatus::kMalformed);
  // Empty host name.
  EXPECT_EQ(parse(clientHelloRecord(sniExtension("")), info).status, ParseStatus::kMalformed);
  // ALPN with a zero-length protocol.
  EXPECT_EQ(parse(clientHelloRecord(extension(16, u16(1) + std::string(1, '\0'))), info).status,
            ParseStatus::kMalformed);
}

TEST(ClientHelloTest, BodyErrorsAreMalformed) {
  ClientHelloInfo info;
  // Session id longer than 32 bytes.
  std::string body = u16(0x0303) + std::string(32, 'r') + std::string(1, 33) +
                     std::string(33, 's') + u16(2) + u16(0x1301) + std::string{1, 0};
  std::string handshake = std::string{0x01, 0x00, 0x00, static_cast<char>(body.size())} + body;
  EXPECT_EQ(parse(std::string{0x16, 0x03, 0x01} + u16(handshake.size()) + handshake, info).status,
            ParseStatus::kMalformed);
  // Odd cipher suite length.
  body = u16(0x0303) + std::string(32, 'r') + std::string(1, '\0') + u16(3) + "abc" +
         std::string{1, 0};
  handshake = std::string{0x01, 0x00, 0x00, static_cast<char>(body.size())} + body;
  EXPECT_EQ(parse(std::string{0x16, 0x03, 0x01} + u16(handshake.size()) + handshake, info).status,
            ParseStatus::kMalformed);
  // Truncated body: the handshake length claims more than the message holds.
  handshake = std::string{0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0x00, 0x00};
  EXPECT_EQ(parse(std::string{0x16, 0x03, 0x01} + u16(handshake.size()) + handshake, info).status,
            ParseStatus::kMalformed);
}

}  // namespace
}  // namespace mcproxy::tls
