#include "source/common/http/upgrade.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>

namespace mcproxy::http::upgrade {
namespace {

std::string base64(const unsigned char* bytes, size_t len) {
  std::string out(4 * ((len + 2) / 3), '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(len));
  out.resize(static_cast<size_t>(written));
  return out;
}

// The HTTP/1.1 handshake fields an HTTP/2 peer neither sends nor expects (RFC 8441 §5).
void removeHttp1HandshakeFields(HeaderMap& headers) {
  headers.remove("upgrade");
  headers.remove("connection");
  headers.remove("sec-websocket-key");
  headers.remove("sec-websocket-accept");
}

}  // namespace

std::string requested(const HeaderMap& request) {
  const std::string* value = request.get("upgrade");
  if (value == nullptr) return "";
  std::string lowered = *value;
  lowerCaseInPlace(lowered);
  return lowered;
}

bool fromExtendedConnect(HeaderMap& request) {
  const std::string* protocol = request.get(":protocol");
  if (protocol == nullptr || request.method() != "CONNECT") return false;
  std::string upgrade = *protocol;
  lowerCaseInPlace(upgrade);
  request.remove(":protocol");
  request.set(":method", "GET");
  removeHttp1HandshakeFields(request);
  request.add("upgrade", upgrade);
  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof(nonce));
  request.add("sec-websocket-key", base64(nonce, sizeof(nonce)));
  return true;
}

std::string toExtendedConnect(HeaderMap& request) {
  const std::string protocol = requested(request);
  const std::string* key_field = request.get("sec-websocket-key");
  std::string key = key_field != nullptr ? *key_field : std::string();
  removeHttp1HandshakeFields(request);
  request.set(":method", "CONNECT");
  // Pseudo-headers come first: :protocol goes right after :method.
  auto& fields = request.fields();
  auto method = std::find_if(fields.begin(), fields.end(),
                             [](const Header& header) { return header.name == ":method"; });
  fields.insert(method + 1, Header{":protocol", protocol});
  return key;
}

void responseForExtendedConnect(HeaderMap& response) {
  if (response.status() == 101) response.set(":status", "200");
  removeHttp1HandshakeFields(response);
}

void responseFromExtendedConnect(HeaderMap& response, std::string_view key) {
  const int status = response.status();
  if (status < 200 || status > 299) return;
  response.set(":status", "101");
  removeHttp1HandshakeFields(response);
  response.add("upgrade", "websocket");
  response.add("sec-websocket-accept", webSocketAccept(key));
}

std::string webSocketAccept(std::string_view key) {
  const std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(digest, sizeof(digest));
}

}  // namespace mcproxy::http::upgrade
