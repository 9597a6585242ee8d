"""Retrieval-augmented answering with LangChain (LCEL) over a kb knowledge base, runnable offline.

Needs `pip install -e ".[langchain]"` (in the kb checkout) and a knowledge base (`kb ingest ./docs`); uses the same one as
the `kb` command (`--kb` aside): `$KB_DIR`, else the nearest `.kb/`, else the user data directory.
The example of docs/langchain.md is this file from the first import on.
"""

from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from kb.integrations.langchain import KBRetriever

retriever = KBRetriever.from_kb(k=4)  # or from_kb("path/to/kb", k=4, path="*AAPL*", pages="1-20")


def format_docs(docs):
    # metadata: source, page, page_end, section, score, rank, chunk_id, file_type, citation
    return "\n\n".join(f"[{i}] {d.metadata['citation']}\n{d.page_content}" for i, d in enumerate(docs, 1))


prompt = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the numbered sources only, and cite them like [1]."),
        ("human", "Sources:\n{context}\n\nQuestion: {question}"),
    ]
)
llm = ParrotFakeChatModel()  # offline stand-in that echoes the prompt; use e.g. ChatOllama(model="llama3.2")

chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()
print(chain.invoke("What were Apple's total net sales for the quarter ended July 1, 2023?"))
