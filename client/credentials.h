// credentials.h — how voucherd's gRPC clients (voucherctl, voucher-load,
// the tests) reach a voucherd with TLS: the CA that signed its certificate,
// and for mutual TLS the client's own certificate and key, all PEM files.
#pragma once

#include <grpcpp/security/credentials.h>

#include <expected>
#include <memory>
#include <string>

namespace voucherd {

struct ClientTls {
  std::string ca_file;    // PEM CA of voucherd's certificate; empty: plaintext
  std::string cert_file;  // PEM client certificate (mutual TLS), with key_file
  std::string key_file;   // PEM client private key
};

// Plaintext when ca_file is empty; else TLS (mutual with cert_file and
// key_file). The error names the file that could not be read.
[[nodiscard]] std::expected<std::shared_ptr<grpc::ChannelCredentials>, std::string>
client_credentials(const ClientTls& tls);

}  // namespace voucherd
