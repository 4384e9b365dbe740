#include "source/common/formatter/formatter.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/time/time.h>

#include "source/common/router/route.h"

namespace mcproxy::formatter {
namespace {

using std::chrono::steady_clock;

int64_t millisecondsBetween(steady_clock::time_point from, steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

void appendNumber(int64_t value, std::string& out) { absl::StrAppend(&out, value); }

const std::string* requestHeader(const Context& context, std::string_view name) {
  return context.request_headers != nullptr ? context.request_headers->get(name) : nullptr;
}

bool appendRequestHeader(const Context& context, std::string_view name, std::string& out) {
  const std::string* value = requestHeader(context, name);
  if (value == nullptr) return false;
  out += *value;
  return true;
}

bool appendView(std::string_view value, std::string& out) {
  if (value.empty()) return false;
  out += value;
  return true;
}

}  // namespace

const std::vector<FieldName>& fieldNames() {
  static const std::vector<FieldName> kNames = {
      {Field::kTime, "TIME", "time", false},
      {Field::kListener, "LISTENER", "listener", false},
      {Field::kClientIp, "CLIENT_IP", "client_ip", false},
      {Field::kClientPort, "CLIENT_PORT", "client_port", true},
      {Field::kPeerIp, "PEER_IP", "peer_ip", false},
      {Field::kSni, "SNI", "sni", false},
      {Field::kAlpn, "ALPN", "alpn", false},
      {Field::kRoute, "ROUTE", "route", false},
      {Field::kMode, "MODE", "mode", false},
      {Field::kBackend, "BACKEND", "backend", false},
      {Field::kTlsVersion, "TLS_VERSION", "tls_version", false},
      {Field::kTlsCipher, "TLS_CIPHER", "tls_cipher", false},
      {Field::kTlsFailure, "TLS_FAILURE", "tls_failure", false},
      {Field::kDurationMs, "DURATION_MS", "duration_ms", true},
      {Field::kCloseReason, "CLOSE_REASON", "close_reason", false},
      {Field::kBytesFromClient, "BYTES_FROM_CLIENT", "bytes_from_client", true},
      {Field::kBytesToClient, "BYTES_TO_CLIENT", "bytes_to_client", true},
      {Field::kMethod, "METHOD", "method", false},
      {Field::kAuthority, "AUTHORITY", "authority", false},
      {Field::kPath, "PATH", "path", false},
      {Field::kProtocol, "PROTOCOL", "protocol", false},
      {Field::kStatus, "STATUS", "status", true},
      {Field::kRequestBytes, "REQUEST_BYTES", "request_bytes", true},
      {Field::kResponseBytes, "RESPONSE_BYTES", "response_bytes", true},
      {Field::kUpstreamConnectMs, "UPSTREAM_CONNECT_MS", "upstream_connect_ms", true},
      {Field::kUpstreamResponseMs, "UPSTREAM_RESPONSE_MS", "upstream_response_ms", true},
      {Field::kRequestId, "REQUEST_ID", "request_id", false},
      {Field::kUserAgent, "USER_AGENT", "user_agent", false},
      {Field::kClientCertSubject, "CLIENT_CERT_SUBJECT", "client_cert_subject", false},
      {Field::kClientCertSha256, "CLIENT_CERT_SHA256", "client_cert_sha256", false},
  };
  return kNames;
}

bool appendField(Field field, const Context& context, std::string& out) {
  const network::StreamInfo& connection = context.connection;
  const http::StreamInfo* stream = context.stream;
  const router::Route* route = connection.route;
  switch (field) {
    case Field::kTime:
      out += rfc3339(wallTime(stream != nullptr ? stream->start_time : connection.start_time));
      return true;
    case Field::kListener:
      return appendView(connection.listener_name, out);
    case Field::kClientIp:
      out += connection.real_client.ip();
      return true;
    case Field::kClientPort:
      appendNumber(connection.real_client.port(), out);
      return true;
    case Field::kPeerIp:
      out += connection.downstream_remote.ip();
      return true;
    case Field::kSni:
      return appendView(connection.requested_server_name, out);
    case Field::kAlpn:
      if (!connection.negotiated_alpn.empty()) return appendView(connection.negotiated_alpn, out);
      if (connection.alpn.empty()) return false;
      out += absl::StrJoin(connection.alpn, ",");
      return true;
    case Field::kRoute:
      if (route == nullptr) return false;
      out += route->hostname.empty() ? "default" : route->hostname;
      return true;
    case Field::kMode:
      if (route == nullptr) return false;
      out += route->mode == router::RouteMode::kL7 ? "L7" : "L4";
      return true;
    case Field::kBackend:
      if (stream != nullptr) {
        if (stream->upstream_address == nullptr) return false;
        out += stream->upstream_address->toString();
        return true;
      }
      if (route == nullptr) return false;
      out += route->backend_text;
      return true;
    case Field::kTlsVersion:
      return appendView(connection.tls_version, out);
    case Field::kTlsCipher:
      return appendView(connection.tls_cipher, out);
    case Field::kTlsFailure:
      return appendView(connection.tls_failure, out);
    case Field::kClientCertSubject:
      return connection.peer_certificate != nullptr &&
             appendView(connection.peer_certificate->subject, out);
    case Field::kClientCertSha256:
      return connection.peer_certificate != nullptr &&
             appendView(connection.peer_certificate->sha256, out);
    case Field::kDurationMs: {
      const auto start = stream != nullptr ? stream->start_time : connection.start_time;
      const auto end = stream != nullptr ? stream->end_time : connection.end_time;
      appendNumber(millisecondsBetween(start, end.value_or(steady_clock::now())), out);
      return true;
    }
    case Field::kCloseReason:
      if (stream != nullptr) {
        out += stream->response_detail.empty() ? "finished" : stream->response_detail;
        return true;
      }
      if (!connection.end_time) return false;
      out += connection.close_detail.empty() ? network::closeReasonName(connection.close_reason)
                                             : connection.close_detail;
      return true;
    case Field::kBytesFromClient:
      appendNumber(static_cast<int64_t>(connection.bytes_from_downstream), out);
      return true;
    case Field::kBytesToClient:
      appendNumber(static_cast<int64_t>(connection.bytes_to_downstream), out);
      return true;
    case Field::kMethod:
      return appendRequestHeader(context, ":method", out);
    case Field::kAuthority:
      return appendRequestHeader(context, ":authority", out);
    case Field::kPath:
      return appendRequestHeader(context, ":path", out);
    case Field::kProtocol:
      return stream != nullptr && appendView(stream->protocol, out);
    case Field::kStatus:
      if (stream == nullptr) return false;
      appendNumber(stream->response_status, out);
      return true;
    case Field::kRequestBytes:
      if (stream == nullptr) return false;
      appendNumber(static_cast<int64_t>(stream->request_body_bytes), out);
      return true;
    case Field::kResponseBytes:
      if (stream == nullptr) return false;
      appendNumber(static_cast<int64_t>(stream->response_body_bytes), out);
      return true;
    case Field::kUpstreamConnectMs:
      if (stream == nullptr || !stream->upstream_connect) return false;
      appendNumber(stream->upstream_connect->count(), out);
      return true;
    case Field::kUpstreamResponseMs:
      if (stream == nullptr || !stream->upstream_response_time) return false;
      appendNumber(millisecondsBetween(stream->start_time, *stream->upstream_response_time), out);
      return true;
    case Field::kRequestId:
      return stream != nullptr && appendView(stream->request_id, out);
    case Field::kUserAgent:
      return appendRequestHeader(context, "user-agent", out);
  }
  return false;
}

absl::StatusOr<Formatter> Formatter::parse(std::string_view text, std::string missing) {
  Formatter formatter;
  formatter.missing_ = std::move(missing);
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '%') {
      literal += text[i++];
      continue;
    }
    const size_t close = text.find('%', i + 1);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated % at offset " + std::to_string(i));
    }
    const std::string_view command = text.substr(i + 1, close - i - 1);
    i = close + 1;
    if (command.empty()) {  // %%
      literal += '%';
      continue;
    }
    Part part{Kind::kText};
    if (command.starts_with("REQ(") && command.ends_with(")") && command.size() > 5) {
      part.kind = Kind::kRequestHeader;
      const std::string_view name = command.substr(4, command.size() - 5);
      part.text = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
      if (!http::validHeaderName(part.text) && !part.text.starts_with(':')) {
        return absl::InvalidArgumentError("%" + std::string(command) + "% names no valid header");
      }
    } else {
      for (const FieldName& name : fieldNames()) {
        if (command == name.command) {
          part.kind = Kind::kField;
          part.field = name.field;
        }
      }
      if (part.kind != Kind::kField) {
        std::string known;
        for (const FieldName& name : fieldNames()) absl::StrAppend(&known, " %", name.command, "%");
        return absl::InvalidArgumentError("unknown %" + std::string(command) + "%; known:" + known +
                                          " %REQ(name)% %%");
      }
    }
    if (!literal.empty()) formatter.parts_.push_back({Kind::kText, Field::kTime, literal});
    literal.clear();
    formatter.parts_.push_back(std::move(part));
  }
  if (!literal.empty()) formatter.parts_.push_back({Kind::kText, Field::kTime, literal});
  return formatter;
}

bool Formatter::readsRequestHeaders() const {
  for (const Part& part : parts_) {
    if (part.kind == Kind::kRequestHeader) return true;
    if (part.kind == Kind::kField &&
        (part.field == Field::kMethod || part.field == Field::kPath ||
         part.field == Field::kAuthority || part.field == Field::kUserAgent)) {
      return true;
    }
  }
  return false;
}

std::string Formatter::format(const Context& context) const {
  std::string out;
  for (const Part& part : parts_) {
    switch (part.kind) {
      case Kind::kText:
        out += part.text;
        break;
      case Kind::kField:
        if (!appendField(part.field, context, out)) out += missing_;
        break;
      case Kind::kRequestHeader:
        if (!appendRequestHeader(context, part.text, out)) out += missing_;
        break;
    }
  }
  return out;
}

std::string rfc3339(std::chrono::system_clock::time_point time) {
  // By hand rather than absl::FormatTime: one of these goes into every access log line.
  const absl::Time instant = absl::FromChrono(time);
  const absl::CivilSecond civil = absl::ToCivilSecond(instant, absl::UTCTimeZone());
  const int64_t millis = absl::ToUnixMillis(instant) - absl::ToUnixSeconds(instant) * 1000;
  char text[] = "0000-00-00T00:00:00.000Z";
  auto put = [&text](int at, int64_t value, int digits) {
    for (int i = digits - 1; i >= 0; --i, value /= 10)
      text[at + i] = static_cast<char>('0' + value % 10);
  };
  put(0, civil.year(), 4);
  put(5, civil.month(), 2);
  put(8, civil.day(), 2);
  put(11, civil.hour(), 2);
  put(14, civil.minute(), 2);
  put(17, civil.second(), 2);
  put(20, millis < 0 ? millis + 1000 : millis, 3);
  return std::string(text, sizeof(text) - 1);
}

std::chrono::system_clock::time_point wallTime(std::chrono::steady_clock::time_point time) {
  const auto since = steady_clock::now() - time;
  return std::chrono::system_clock::now() -
         std::chrono::duration_cast<std::chrono::system_clock::duration>(since);
}

}  // namespace mcproxy::formatter
