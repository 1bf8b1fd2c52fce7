//! Chat prompts: turning a conversation into the text a model was trained on.
//!
//! The template family is detected from the GGUF's `tokenizer.chat_template`
//! (a Jinja template) with llama.cpp's heuristics (`llm_chat_detect_template`),
//! and rendered as llama.cpp's `llm_chat_apply_template` renders it. ChatML
//! templates that put in a default system prompt when the conversation has
//! none (SmolLM2's, Qwen2.5's) get it here too, as their Jinja would.
//!
//! ```
//! use ember::chat::{ChatTemplate, Message};
//! let t = ChatTemplate::detect("{{ '<|im_start|>' + message['role'] }}");
//! let text = t.render(&[Message::new("user", "Hi")], true);
//! assert_eq!(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
//! ```

use crate::gguf::Gguf;

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant` (other roles pass through where the
    /// family allows).
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A chat template family (llama.cpp's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// `<|im_start|>role\n…<|im_end|>\n`.
    ChatMl,
    /// Llama 2 without system-message support.
    Llama2,
    /// Llama 2 with `<<SYS>>`.
    Llama2Sys,
    /// Llama 2 with `<<SYS>>` and BOS inside the history.
    Llama2SysBos,
    /// Llama 2 with `<<SYS>>` and stripped messages.
    Llama2SysStrip,
    /// Mistral v1 (`" [INST] "`).
    MistralV1,
    /// Mistral v3 (`"[INST] "`, trimmed replies).
    MistralV3,
    /// Mistral v3 tekken (`"[INST]"`).
    MistralV3Tekken,
    /// Mistral v7 (`[SYSTEM_PROMPT] `).
    MistralV7,
    /// Mistral v7 tekken (`[SYSTEM_PROMPT]`).
    MistralV7Tekken,
    /// Phi-3: `<|role|>\n…<|end|>\n`.
    Phi3,
    /// Phi-4: ChatML with `<|im_sep|>`.
    Phi4,
    /// Falcon 3: `<|role|>\n…\n`.
    Falcon3,
    /// Zephyr: `<|role|>\n…<|endoftext|>\n`.
    Zephyr,
    /// Gemma: `<start_of_turn>role\n…<end_of_turn>\n`, no system role.
    Gemma,
    /// Llama 3: `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
    Llama3,
    /// Llama 4: `<|header_start|>role<|header_end|>\n\n…<|eot|>`.
    Llama4,
    /// Command-R.
    CommandR,
    /// DeepSeek V3.
    DeepSeek3,
    /// IBM Granite.
    Granite,
    /// SmolVLM (`<|im_start|>` as BOS, `User:`/`Assistant:` turns).
    SmolVlm,
}

impl Family {
    /// A family by llama.cpp's name for it (`chatml`, `llama3`, …).
    pub fn from_name(name: &str) -> Option<Family> {
        Some(match name {
            "chatml" => Family::ChatMl,
            "llama2" => Family::Llama2,
            "llama2-sys" => Family::Llama2Sys,
            "llama2-sys-bos" => Family::Llama2SysBos,
            "llama2-sys-strip" => Family::Llama2SysStrip,
            "mistral-v1" => Family::MistralV1,
            "mistral-v3" => Family::MistralV3,
            "mistral-v3-tekken" => Family::MistralV3Tekken,
            "mistral-v7" => Family::MistralV7,
            "mistral-v7-tekken" => Family::MistralV7Tekken,
            "phi3" => Family::Phi3,
            "phi4" => Family::Phi4,
            "falcon3" => Family::Falcon3,
            "zephyr" => Family::Zephyr,
            "gemma" => Family::Gemma,
            "llama3" => Family::Llama3,
            "llama4" => Family::Llama4,
            "command-r" => Family::CommandR,
            "deepseek3" => Family::DeepSeek3,
            "granite" => Family::Granite,
            "smolvlm" => Family::SmolVlm,
            _ => return None,
        })
    }

    /// Detects the family of a Jinja template, as llama.cpp does. `Err`
    /// carries the name of a family llama.cpp knows but Ember does not render
    /// (or `"unknown"`).
    pub fn detect(tmpl: &str) -> Result<Family, &'static str> {
        if let Some(f) = Family::from_name(tmpl) {
            return Ok(f);
        }
        let has = |s: &str| tmpl.contains(s);
        if has("<|im_start|>") {
            return Ok(if has("<|im_sep|>") {
                Family::Phi4
            } else if has("<end_of_utterance>") {
                Family::SmolVlm
            } else {
                Family::ChatMl
            });
        }
        if tmpl.starts_with("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") {
                return Ok(Family::MistralV7);
            }
            if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                return Ok(if has(" [INST]") {
                    Family::MistralV1
                } else if has("\"[INST]\"") {
                    Family::MistralV3Tekken
                } else {
                    Family::MistralV3
                });
            }
            return Ok(if has("content.strip()") {
                Family::Llama2SysStrip
            } else if has("bos_token + '[INST]") {
                Family::Llama2SysBos
            } else if has("<<SYS>>") {
                Family::Llama2Sys
            } else {
                Family::Llama2
            });
        }
        if has("<|assistant|>") && has("<|end|>") {
            return Ok(Family::Phi3);
        }
        if has("[gMASK]<sop>") {
            return Err("chatglm4");
        }
        if has("<|assistant|>") && has("<|user|>") {
            return if has("</s>") {
                Ok(Family::Falcon3)
            } else {
                Err("glmedge")
            };
        }
        if has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>") {
            return Err("glmedge");
        }
        if has("<|user|>") && has("<|endoftext|>") {
            return Ok(Family::Zephyr);
        }
        if has("bos_token + message['role']") {
            return Err("monarch");
        }
        if has("<start_of_turn>") {
            return Ok(Family::Gemma);
        }
        if has("'\\n\\nAssistant: ' + eos_token") {
            return Err("orion");
        }
        if has("GPT4 Correct ") {
            return Err("openchat");
        }
        if has("USER: ") && has("ASSISTANT: ") {
            return Err("vicuna");
        }
        if has("### Instruction:") && has("<|EOT|>") {
            return Err("deepseek");
        }
        if has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>") {
            return Ok(Family::CommandR);
        }
        if has("<|start_header_id|>") && has("<|end_header_id|>") {
            return Ok(Family::Llama3);
        }
        if has("[gMASK]sop") {
            return Err("chatglm3");
        }
        if has("<用户>") {
            return Err("minicpm");
        }
        if has("'Assistant: ' + message['content'] + eos_token") {
            return Err("deepseek2");
        }
        if has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>") {
            return Ok(Family::DeepSeek3);
        }
        if has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]") {
            return Err("exaone");
        }
        if has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}") {
            return Err("rwkv-world");
        }
        if has("<|start_of_role|>") {
            return Ok(Family::Granite);
        }
        if has("<|header_start|>") && has("<|header_end|>") {
            return Ok(Family::Llama4);
        }
        Err("unknown")
    }
}

/// A detected chat template, ready to render conversations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTemplate {
    family: Family,
    default_system: Option<String>,
}

/// C's `isspace`-based trim, as llama.cpp's `trim`.
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r'))
}

/// Finds a ChatML default system prompt in a Jinja template: the literal text
/// of a `<|im_start|>system\n…<|im_end|>` block written when the first message
/// is not a system message.
fn chatml_default_system(tmpl: &str) -> Option<String> {
    if !(tmpl.contains("!= 'system'") || tmpl.contains("!= \"system\"") || tmpl.contains("else")) {
        return None;
    }
    let open = "<|im_start|>system";
    let mut rest = tmpl;
    while let Some(i) = rest.find(open) {
        rest = &rest[i + open.len()..];
        let body = if let Some(b) = rest.strip_prefix('\n') {
            b
        } else if let Some(b) = rest.strip_prefix("\\n") {
            b
        } else {
            continue;
        };
        let Some(end) = body.find("<|im_end|>") else {
            continue;
        };
        let text = &body[..end];
        // Only literal text: no Jinja, no closing quote of the string literal.
        if text.is_empty() || text.contains("{{") || text.contains("{%") || text.contains('\'') {
            continue;
        }
        return Some(text.replace("\\n", "\n"));
    }
    None
}

impl ChatTemplate {
    /// Detects the family of a Jinja template (or a llama.cpp family name).
    /// An unknown template falls back to ChatML, with a warning.
    pub fn detect(tmpl: &str) -> ChatTemplate {
        let family = match Family::detect(tmpl) {
            Ok(f) => f,
            Err(name) => {
                log::warn!("chat template family {name:?} is not supported; using ChatML");
                Family::ChatMl
            }
        };
        let default_system = if family == Family::ChatMl {
            chatml_default_system(tmpl)
        } else {
            None
        };
        ChatTemplate {
            family,
            default_system,
        }
    }

    /// The template of a GGUF (`tokenizer.chat_template`); ChatML if it has none.
    pub fn from_gguf(g: &Gguf<'_>) -> ChatTemplate {
        match g.str("tokenizer.chat_template") {
            Ok(t) => ChatTemplate::detect(t),
            Err(_) => {
                log::warn!("the model has no chat template; using ChatML");
                ChatTemplate::from_family(Family::ChatMl)
            }
        }
    }

    /// A template of a given family, with no default system prompt.
    pub fn from_family(family: Family) -> ChatTemplate {
        ChatTemplate {
            family,
            default_system: None,
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The system prompt used when a conversation has none (ChatML only).
    pub fn default_system(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// Renders a conversation; `add_generation_prompt` opens the assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> String {
        let add_ass = add_generation_prompt;
        let mut s = String::new();
        match self.family {
            Family::ChatMl => {
                if let (Some(sys), Some(first)) = (&self.default_system, messages.first()) {
                    if first.role != "system" {
                        push_all(&mut s, &["<|im_start|>system\n", sys, "<|im_end|>\n"]);
                    }
                }
                for m in messages {
                    push_all(
                        &mut s,
                        &["<|im_start|>", &m.role, "\n", &m.content, "<|im_end|>\n"],
                    );
                }
                if add_ass {
                    s.push_str("<|im_start|>assistant\n");
                }
            }
            Family::MistralV7 | Family::MistralV7Tekken => {
                let sp = if self.family == Family::MistralV7 {
                    " "
                } else {
                    ""
                };
                for m in messages {
                    match m.role.as_str() {
                        "system" => push_all(
                            &mut s,
                            &["[SYSTEM_PROMPT]", sp, &m.content, "[/SYSTEM_PROMPT]"],
                        ),
                        "user" => push_all(&mut s, &["[INST]", sp, &m.content, "[/INST]"]),
                        _ => push_all(&mut s, &[sp, &m.content, "</s>"]),
                    }
                }
            }
            Family::MistralV1 | Family::MistralV3 | Family::MistralV3Tekken => {
                let lead = if self.family == Family::MistralV1 {
                    " "
                } else {
                    ""
                };
                let trail = if self.family == Family::MistralV3Tekken {
                    ""
                } else {
                    " "
                };
                let trim_reply = self.family == Family::MistralV3;
                let mut inside = false;
                for m in messages {
                    if !inside {
                        push_all(&mut s, &[lead, "[INST]", trail]);
                        inside = true;
                    }
                    match m.role.as_str() {
                        "system" => push_all(&mut s, &[&m.content, "\n\n"]),
                        "user" => push_all(&mut s, &[&m.content, lead, "[/INST]"]),
                        _ => {
                            let c = if trim_reply {
                                trim(&m.content)
                            } else {
                                &m.content
                            };
                            push_all(&mut s, &[trail, c, "</s>"]);
                            inside = false;
                        }
                    }
                }
            }
            Family::Llama2 | Family::Llama2Sys | Family::Llama2SysBos | Family::Llama2SysStrip => {
                let sys_ok = self.family != Family::Llama2;
                let bos_inside = self.family == Family::Llama2SysBos;
                let strip = self.family == Family::Llama2SysStrip;
                let mut inside = true;
                s.push_str("[INST] ");
                for m in messages {
                    let c = if strip { trim(&m.content) } else { &m.content };
                    if !inside {
                        inside = true;
                        s.push_str(if bos_inside { "<s>[INST] " } else { "[INST] " });
                    }
                    match m.role.as_str() {
                        "system" if sys_ok => push_all(&mut s, &["<<SYS>>\n", c, "\n<</SYS>>\n\n"]),
                        "system" => push_all(&mut s, &[c, "\n"]),
                        "user" => push_all(&mut s, &[c, " [/INST]"]),
                        _ => {
                            push_all(&mut s, &[c, "</s>"]);
                            inside = false;
                        }
                    }
                }
            }
            Family::Phi3 => {
                for m in messages {
                    push_all(&mut s, &["<|", &m.role, "|>\n", &m.content, "<|end|>\n"]);
                }
                if add_ass {
                    s.push_str("<|assistant|>\n");
                }
            }
            Family::Phi4 => {
                for m in messages {
                    push_all(
                        &mut s,
                        &[
                            "<|im_start|>",
                            &m.role,
                            "<|im_sep|>",
                            &m.content,
                            "<|im_end|>",
                        ],
                    );
                }
                if add_ass {
                    s.push_str("<|im_start|>assistant<|im_sep|>");
                }
            }
            Family::Falcon3 => {
                for m in messages {
                    push_all(&mut s, &["<|", &m.role, "|>\n", &m.content, "\n"]);
                }
                if add_ass {
                    s.push_str("<|assistant|>\n");
                }
            }
            Family::Zephyr => {
                for m in messages {
                    push_all(
                        &mut s,
                        &["<|", &m.role, "|>\n", &m.content, "<|endoftext|>\n"],
                    );
                }
                if add_ass {
                    s.push_str("<|assistant|>\n");
                }
            }
            Family::Gemma => {
                let mut system = String::new();
                for m in messages {
                    if m.role == "system" {
                        system.push_str(trim(&m.content));
                        continue;
                    }
                    let role = if m.role == "assistant" {
                        "model"
                    } else {
                        &m.role
                    };
                    push_all(&mut s, &["<start_of_turn>", role, "\n"]);
                    if !system.is_empty() && role != "model" {
                        push_all(&mut s, &[&system, "\n\n"]);
                        system.clear();
                    }
                    push_all(&mut s, &[trim(&m.content), "<end_of_turn>\n"]);
                }
                if add_ass {
                    s.push_str("<start_of_turn>model\n");
                }
            }
            Family::Llama3 => {
                for m in messages {
                    push_all(
                        &mut s,
                        &[
                            "<|start_header_id|>",
                            &m.role,
                            "<|end_header_id|>\n\n",
                            trim(&m.content),
                            "<|eot_id|>",
                        ],
                    );
                }
                if add_ass {
                    s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            Family::Llama4 => {
                for m in messages {
                    push_all(
                        &mut s,
                        &[
                            "<|header_start|>",
                            &m.role,
                            "<|header_end|>\n\n",
                            trim(&m.content),
                            "<|eot|>",
                        ],
                    );
                }
                if add_ass {
                    s.push_str("<|header_start|>assistant<|header_end|>\n\n");
                }
            }
            Family::CommandR => {
                for m in messages {
                    let tag = match m.role.as_str() {
                        "system" => "<|SYSTEM_TOKEN|>",
                        "user" => "<|USER_TOKEN|>",
                        "assistant" => "<|CHATBOT_TOKEN|>",
                        _ => continue,
                    };
                    push_all(
                        &mut s,
                        &[
                            "<|START_OF_TURN_TOKEN|>",
                            tag,
                            trim(&m.content),
                            "<|END_OF_TURN_TOKEN|>",
                        ],
                    );
                }
                if add_ass {
                    s.push_str("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
                }
            }
            Family::DeepSeek3 => {
                for m in messages {
                    match m.role.as_str() {
                        "system" => push_all(&mut s, &[&m.content, "\n\n"]),
                        "user" => push_all(&mut s, &["<｜User｜>", &m.content]),
                        "assistant" => push_all(
                            &mut s,
                            &["<｜Assistant｜>", &m.content, "<｜end▁of▁sentence｜>"],
                        ),
                        _ => {}
                    }
                }
                if add_ass {
                    s.push_str("<｜Assistant｜>");
                }
            }
            Family::Granite => {
                for m in messages {
                    push_all(&mut s, &["<|start_of_role|>", &m.role, "<|end_of_role|>"]);
                    if m.role == "assistant_tool_call" {
                        s.push_str("<|tool_call|>");
                    }
                    push_all(&mut s, &[&m.content, "<|end_of_text|>\n"]);
                }
                if add_ass {
                    s.push_str("<|start_of_role|>assistant<|end_of_role|>\n");
                }
            }
            Family::SmolVlm => {
                s.push_str("<|im_start|>");
                for m in messages {
                    match m.role.as_str() {
                        "system" => push_all(&mut s, &[&m.content, "\n\n"]),
                        "user" => push_all(&mut s, &["User: ", &m.content, "<end_of_utterance>\n"]),
                        _ => push_all(&mut s, &["Assistant: ", &m.content, "<end_of_utterance>\n"]),
                    }
                }
                if add_ass {
                    s.push_str("Assistant:");
                }
            }
        }
        s
    }
}

fn push_all(s: &mut String, parts: &[&str]) {
    for p in parts {
        s.push_str(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn conv() -> Vec<Message> {
        vec![
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", " Hello! "),
            Message::new("user", "Bye"),
        ]
    }

    #[test]
    fn smollm2_default_system_prompt() {
        let t = ChatTemplate::detect(SMOLLM2);
        assert_eq!(t.family(), Family::ChatMl);
        assert_eq!(
            t.default_system(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(
            t.render(&[Message::new("user", "Hi")], true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        // A system message replaces the default.
        assert_eq!(
            t.render(&conv()[..2], false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
        assert_eq!(t.render(&[], true), "<|im_start|>assistant\n");
    }

    #[test]
    fn qwen_style_default_system() {
        let qwen = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}";
        let t = ChatTemplate::detect(qwen);
        assert_eq!(
            t.default_system(),
            Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        );
        let plain = ChatTemplate::detect("{{ '<|im_start|>' + message['role'] + '\\n' }}");
        assert_eq!(plain.default_system(), None);
    }

    #[test]
    fn chatml() {
        let t = ChatTemplate::from_family(Family::ChatMl);
        assert_eq!(
            t.render(&conv(), true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn llama2_variants() {
        let t = ChatTemplate::detect(
            "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}<<SYS>>",
        );
        assert_eq!(t.family(), Family::Llama2SysStrip);
        assert_eq!(
            t.render(&conv(), true),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]"
        );
        let t = ChatTemplate::detect("[INST] {{ message }} [/INST]");
        assert_eq!(t.family(), Family::Llama2);
        assert_eq!(
            t.render(&conv(), false),
            "[INST] Be brief.\nHi [/INST] Hello! </s>[INST] Bye [/INST]"
        );
        assert_eq!(
            ChatTemplate::detect("<<SYS>> [INST]").family(),
            Family::Llama2Sys
        );
        let t = ChatTemplate::detect("{{ bos_token + '[INST] ' }}<<SYS>>");
        assert_eq!(t.family(), Family::Llama2SysBos);
        assert!(t.render(&conv(), false).contains("</s><s>[INST] Bye"));
    }

    #[test]
    fn mistral_variants() {
        let v7 = ChatTemplate::detect("[SYSTEM_PROMPT] [INST]");
        assert_eq!(v7.family(), Family::MistralV7);
        assert_eq!(
            v7.render(&conv(), true),
            "[SYSTEM_PROMPT] Be brief.[/SYSTEM_PROMPT][INST] Hi[/INST]  Hello! </s>[INST] Bye[/INST]"
        );
        let v1 = ChatTemplate::detect("{{ ' [INST] ' + system_message }}");
        assert_eq!(v1.family(), Family::MistralV1);
        assert_eq!(
            v1.render(&conv(), false),
            " [INST] Be brief.\n\nHi [/INST]  Hello! </s> [INST] Bye [/INST]"
        );
        let v3 = ChatTemplate::detect("[AVAILABLE_TOOLS] [INST]");
        assert_eq!(v3.family(), Family::MistralV1);
        let v3 = ChatTemplate::detect("[AVAILABLE_TOOLS]{{'[INST]'}}");
        assert_eq!(v3.family(), Family::MistralV3);
        assert_eq!(
            v3.render(&conv(), false),
            "[INST] Be brief.\n\nHi[/INST] Hello!</s>[INST] Bye[/INST]"
        );
        let tekken = ChatTemplate::detect("[AVAILABLE_TOOLS]{{\"[INST]\"}}");
        assert_eq!(tekken.family(), Family::MistralV3Tekken);
        assert_eq!(
            tekken.render(&conv(), false),
            "[INST]Be brief.\n\nHi[/INST] Hello! </s>[INST]Bye[/INST]"
        );
    }

    #[test]
    fn llama3() {
        let t = ChatTemplate::detect("<|start_header_id|>{{ role }}<|end_header_id|>");
        assert_eq!(t.family(), Family::Llama3);
        assert_eq!(
            t.render(&conv()[1..3], true),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn phi3_and_gemma() {
        let t = ChatTemplate::detect("<|user|>{{ x }}<|end|><|assistant|>");
        assert_eq!(t.family(), Family::Phi3);
        assert_eq!(
            t.render(&conv()[1..2], true),
            "<|user|>\nHi<|end|>\n<|assistant|>\n"
        );
        let g = ChatTemplate::detect("{{ '<start_of_turn>' + role }}");
        assert_eq!(g.family(), Family::Gemma);
        assert_eq!(
            g.render(&conv(), true),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn other_families_detected() {
        assert_eq!(
            ChatTemplate::detect("<|im_start|><|im_sep|>").family(),
            Family::Phi4
        );
        assert_eq!(
            ChatTemplate::detect("<|user|><|endoftext|>").family(),
            Family::Zephyr
        );
        assert_eq!(
            ChatTemplate::detect("<|user|><|assistant|></s>").family(),
            Family::Falcon3
        );
        assert_eq!(
            ChatTemplate::detect("<|start_of_role|>").family(),
            Family::Granite
        );
        assert_eq!(ChatTemplate::detect("llama3").family(), Family::Llama3);
        assert_eq!(Family::detect("GPT4 Correct "), Err("openchat"));
    }

    #[test]
    fn unknown_falls_back_to_chatml() {
        let t = ChatTemplate::detect("{{ messages }}");
        assert_eq!(t.family(), Family::ChatMl);
        assert_eq!(
            t.render(&[Message::new("user", "x")], false),
            "<|im_start|>user\nx<|im_end|>\n"
        );
    }
}
