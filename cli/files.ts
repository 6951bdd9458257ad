/**
 * File and directory arguments, checked while the arguments are parsed (before a TAP device or a
 * stack is brought up): every error names the option and the path, and says what is wrong with it
 * in words ("no such file", "not a PEM private key"), never a bare errno or OpenSSL code.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError } from "./args.js";

function why(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case "ENOENT":
    case "ENOTDIR":
      return "no such file";
    case "EISDIR":
      return "is a directory, not a file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    default:
      return err.message;
  }
}

/** The contents of the regular file given to `option`. */
export function readFileOption(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`${option} ${path}: ${why(e)}`);
  }
}

/** A file that must exist and be readable, read later (streamed): checked, not read. */
export function regularFileOption(option: string, path: string): string {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    throw new UsageError(`${option} ${path}: ${why(e)}`);
  }
  if (!isFile) throw new UsageError(`${option} ${path}: not a regular file`);
  return path;
}

/** A directory that must exist. */
export function directoryOption(option: string, path: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new UsageError(`${option} ${path}: ${why(e) === "no such file" ? "no such directory" : why(e)}`);
  }
  if (!isDir) throw new UsageError(`${option} ${path}: not a directory`);
  return path;
}

/** A file paf will create or overwrite: its directory must exist, and it must not be a directory. */
export function outputFileOption(option: string, path: string): string {
  const dir = dirname(resolve(path));
  let dirOk = false;
  try {
    dirOk = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!dirOk) throw new UsageError(`${option} ${path}: no such directory ${dir}`);
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    // a new file: fine
  }
  if (isDir) throw new UsageError(`${option} ${path}: is a directory, not a file`);
  return path;
}

/** One or more PEM certificates (a chain, or trusted roots); the first must parse. */
export function certificatesOption(option: string, path: string): Buffer {
  const pem = readFileOption(option, path);
  try {
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no PEM certificate block");
    new X509Certificate(pem);
  } catch {
    throw new UsageError(`${option} ${path}: not a PEM certificate`);
  }
  return pem;
}

/** An unencrypted PEM private key. */
export function privateKeyOption(option: string, path: string): { pem: Buffer; key: KeyObject } {
  const pem = readFileOption(option, path);
  // PKCS#8 and the older OpenSSL form mark encryption in the PEM text; OpenSSL's own error for
  // them (a passphrase prompt with no terminal) would say only "interrupted or cancelled".
  const text = pem.toString("latin1");
  if (text.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.includes("Proc-Type: 4,ENCRYPTED")) throw new UsageError(`${option} ${path}: an encrypted private key (give it unencrypted)`);
  try {
    return { pem, key: createPrivateKey({ key: pem, format: "pem", passphrase: "" }) };
  } catch {
    throw new UsageError(`${option} ${path}: not a PEM private key`);
  }
}

/** --cert and --key: both readable PEM, and the certificate's public key is the key's. */
export function certificateAndKey(certPath: string, keyPath: string): { cert: Buffer; key: Buffer } {
  const cert = certificatesOption("--cert", certPath);
  const { pem, key } = privateKeyOption("--key", keyPath);
  if (!new X509Certificate(cert).checkPrivateKey(key)) throw new UsageError(`--cert and --key do not match (${certPath} is not the certificate of ${keyPath})`);
  return { cert, key: pem };
}
